"""Text that must never be taken as a fleet command: shell lines, injections, pids, and orders aimed
at Aurora itself, PID 1, init or the host."""
from __future__ import annotations

import re
import unicodedata

from .text import CONTROL, MAX_INPUT_CHARS, QUOTES

__all__ = ["SELF_TARGET", "looks_dangerous"]


_SHELL_META = re.compile(
    r"`|\$\(|\$\{|\$[a-z_]|&&|\|\||\||>>|&>|\d>|>\s*[/~$&]|<\s*[/~(]|\\x[0-9a-f]{2}|:\(\)\s*\{"
)
_SHELL_WORDS = (
    r"rm|shutdown|reboot|halt|poweroff|kill\w*|pkill|sudo|su|curl|wget|cat|echo|chmod|chown|dd|mkfs"
    r"|sh|bash|zsh|python\d*|perl|ruby|node|nc|ncat|exec|eval|init|systemctl|service|drop|delete|insert"
    r"|update|truncate|select|alter|grant|exit|ls|mv|cp|touch|sleep|nohup"
)
_SHELL_CMD = re.compile(
    r";\s*(?:" + _SHELL_WORDS + r")\b"
    r"|;\s*-{2}|;\s*$"
    r"|\bsudo\b|\bsu\s+-|\bkillall\b|\bpkill\b|\bxargs\b|\bnohup\b|\bmkfs\b|\bchmod\b|\bchown\b"
    r"|\biptables\b|\bcrontab\s+-|\btelinit\b|\bsystemctl\s+\w"
    r"|\brm\s+(?:-|/|~|\*|\.)|\bdd\s+(?:if|of)="
    r"|\b(?:cat|less|more|head|tail|cp|mv|ls|source)\s+(?:/|~|\.\.?/)"
    r"|\b(?:curl|wget)\s+(?:-|https?://|\S+\.\S+/)"
    r"|\b(?:nc|ncat|netcat|telnet)\s+(?:-|\S+\.\S+)"
    r"|\b(?:bash|sh|zsh|dash|python\d*(?:\.\d+)?|perl|ruby|node)\s+-\w"
    r"|\bshutdown\b\s*(?:$|now\b|-|\+|\d)"
    r"|\binit\s+[0-6]\b"
    r"|\bkill\s*(?:-\w+|\d+|%\d|pid\b|\$)"
    r"|\bpid\s*[:#=]?\s*\d+"
    r"|/etc/(?:passwd|shadow|sudoers|hosts)|/dev/(?:sd|nvme|null|zero|u?random|tcp|mem)"
    r"|\bos\.system\b|\bsubprocess\b|\b__import__\b|\beval\s*\(|\bexec\s*\("
)
_SQL = re.compile(
    r"\b(?:drop|truncate|alter)\s+table\b|\bdelete\s+from\b|\binsert\s+into\b|\bunion\s+(?:all\s+)?select\b"
    r"|'\s*or\s+'?\w+'?\s*=|\bor\s+1\s*=\s*1\b|'\s*;|'\s*--"
)
_BARE_POWER = re.compile(r"^(?:sudo\s+)?(?:reboot|halt|poweroff|shutdown)(?:\s+(?:now|-\w+))?$")


def looks_dangerous(text: str) -> str | None:
    """The reason ``text`` looks like a shell line / injection / pid, or ``None``."""
    if not isinstance(text, str) or not text:
        return None
    raw = text[: MAX_INPUT_CHARS * 4]
    lowered = unicodedata.normalize("NFKC", raw).translate(QUOTES).lower()
    spaced = CONTROL.sub(" ", lowered)
    for candidate in {lowered, spaced}:
        if _SHELL_META.search(candidate):
            return "that looks like a shell line; chat text is never executed"
        if _SQL.search(candidate):
            return "that looks like an injection attempt; nothing was run"
        if _SHELL_CMD.search(candidate):
            return "that looks like a shell command or a process id; Aurora only acts on its own services"
    if _BARE_POWER.match(" ".join(spaced.split())):
        return "Aurora does not reboot or shut down the host"
    return None


# Aurora itself, PID 1, init, the host: never a target of a fleet-changing command.
SELF_TARGET = re.compile(
    r"\baurora\b(?!\s*[-_ ]?\s*ui\b)|\b(?:init|systemd|yourself|pid)\b|\bprocess\s+#?\d+"
    r"|\bthe\s+(?:host|machine|box|kernel|os|whole\s+server)\b"
)
