"""Answers to messages that are not fleet commands: the catalogue's guidance, shaped by conversation type. Pure.

One function per conversation type, registered in :data:`GUIDES` under the type's name:

* ``debugging`` — cause → evidence → next step;
* ``analysis`` — a compact table (the fleet's, when there is live data), then questions;
* ``explanation`` — concept, why it matters, example;
* ``question_answering`` — a one-line answer first, then the detail;
* ``code_generation`` — a fenced code sketch built from the program's checklist;
* ``architecture`` / ``optimization`` / ``testing`` / ``refactoring`` — decide / do / avoid, in their words;
* ``general_chat`` — one friendly line, the fleet's health when known, and where to go next.

Whatever the operator typed is escaped and clipped before it is echoed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from .detector import CONVERSATION_TYPES
from .replies import CONTROL, bullets, code_span, first_sentence, fleet_health_line, md_escape, status_table

if TYPE_CHECKING:
    from ..catalogue import Program, Tier
    from ..model import FleetSnapshot
    from ..patterns import Pattern
    from .router import Route

__all__ = ["GUIDES", "Guide", "guidance"]


_GREETING = re.compile(r"\b(?:hello|hi|hey|yo|howdy|good (?:morning|afternoon|evening)|hiya|greetings)\b")
_THANKS = re.compile(r"\b(?:thanks|thank you|thx|ty|cheers|much appreciated)\b")
_BYE = re.compile(r"\b(?:bye|goodbye|see you|later|good night|cya)\b")

_CODE_LANG = {1: "python", 2: "javascript", 3: "go", 4: "rust", 5: "csharp", 6: "python", 55: "python", 56: "python",
              57: "python"}
_LANG_HINTS = (
    (re.compile(r"\bdockerfile\b|\bdocker file\b"), "dockerfile"),
    (re.compile(r"\btypescript\b|\bts\b"), "typescript"),
    (re.compile(r"\b(?:bash|shell script|sh script|shell)\b"), "bash"),
    (re.compile(r"\b(?:yaml|yml|kubernetes manifest|k8s manifest|helm|github actions?|workflow|compose file)\b"), "yaml"),
    (re.compile(r"\bsql\b|\bquery\b|\bmigration\b"), "sql"),
    (re.compile(r"\btoml\b|\baurora config\b|\bfleet config\b"), "toml"),
    (re.compile(r"\bgolang\b|\bgo (?:code|program|service|function)\b"), "go"),
    (re.compile(r"\brust\b"), "rust"),
    (re.compile(r"\bjavascript\b|\bnode(?:\.?js)?\b"), "javascript"),
    (re.compile(r"\bc#|\bcsharp\b|\.net\b"), "csharp"),
    (re.compile(r"\bpython\b"), "python"),
)
_COMMENT = {"python": "#", "bash": "#", "yaml": "#", "toml": "#", "dockerfile": "#", "sql": "--"}


def _language(program_id: int | None, text: str) -> str:
    lowered = text.lower()
    for rx, lang in _LANG_HINTS:
        if rx.search(lowered):
            return lang
    return _CODE_LANG.get(program_id or 0, "python")


def _code_sketch(lang: str, task: str, steps: Sequence[str]) -> str:
    c = _COMMENT.get(lang, "//")
    head = [f"{c} Sketch: {task}"] + [f"{c} {i}. {s}" for i, s in enumerate(steps, 1)]
    head = [h.replace("```", "'''") for h in head]
    body = {
        "python": ['from __future__ import annotations', '', '', 'def main() -> int:',
                   '    """Fill in each numbered step above; keep the happy path and one failure path tested."""',
                   '    raise NotImplementedError("sketch")', '', '', 'if __name__ == "__main__":',
                   '    raise SystemExit(main())'],
        "javascript": ['"use strict";', '', 'async function main() {', '  // fill in the numbered steps above',
                       '  throw new Error("sketch");', '}', '', 'main().catch((err) => {', '  console.error(err);',
                       '  process.exitCode = 1;', '});'],
        "typescript": ['export async function main(): Promise<void> {', '  // fill in the numbered steps above',
                       '  throw new Error("sketch");', '}'],
        "go": ['package main', '', 'import (', '\t"context"', '\t"log"', ')', '', 'func run(ctx context.Context) error {',
               '\t// fill in the numbered steps above', '\treturn nil', '}', '', 'func main() {',
               '\tif err := run(context.Background()); err != nil {', '\t\tlog.Fatal(err)', '\t}', '}'],
        "rust": ['fn run() -> Result<(), Box<dyn std::error::Error>> {', '    // fill in the numbered steps above',
                 '    Ok(())', '}', '', 'fn main() {', '    if let Err(e) = run() {', '        eprintln!("{e}");',
                 '        std::process::exit(1);', '    }', '}'],
        "csharp": ['public static class Program', '{', '    public static async Task<int> Main(string[] args)', '    {',
                   '        // fill in the numbered steps above', '        await Task.CompletedTask;', '        return 0;',
                   '    }', '}'],
        "bash": ['set -euo pipefail', '', 'main() {', '  # fill in the numbered steps above', '  :', '}', '', 'main "$@"'],
        "yaml": ['# fill in the numbered steps above', 'name: sketch'],
        "toml": ['# fill in the numbered steps above'],
        "dockerfile": ['FROM python:3.12-slim', 'WORKDIR /app', 'COPY . .', '# fill in the numbered steps above',
                       'USER 1000', 'CMD ["python", "-m", "app"]'],
        "sql": ['-- fill in the numbered steps above', 'BEGIN;', 'COMMIT;'],
    }.get(lang, [f"{c} fill in the numbered steps above"])
    return f"```{lang}\n" + "\n".join(head + [""] + body) + "\n```"


@dataclass(frozen=True)
class Guide:
    """What every shape draws on: the message, the program and tiers that answer it, and what is known live."""

    route: Route
    text: str
    program: Program
    tiers: Sequence[Tier]
    snapshot: FleetSnapshot | None = None
    #: Live lines about the fleet (evidence), empty ones left out.
    live: Sequence[str] = ()
    #: A one-line answer already known (a question about a service's port, pid …).
    answer: str | None = None
    #: An issue pattern the message describes.
    pattern: Pattern | None = None

    @property
    def ask(self) -> str:
        return md_escape(self.text, 90) or "(empty message)"

    @property
    def summary(self) -> str:
        return md_escape(self.program.summary, 400)

    @property
    def questions(self) -> list[str]:
        return [md_escape(q, 300) for q in self.program.questions]

    @property
    def checklist(self) -> list[str]:
        return [md_escape(c, 300) for c in self.program.checklist]

    @property
    def pitfalls(self) -> list[str]:
        return [md_escape(p, 300) for p in self.program.pitfalls]


def _live_lines(g: Guide) -> list[str]:
    """The live facts as bullets, with a blank line after them when there are any."""
    return [f"- {f}" for f in g.live] + ([""] if g.live else [])


def _from_the_tiers(tiers: Sequence[Tier]) -> list[str]:
    """Each tier's first checklist item, under a heading (nothing when no tier has one)."""
    notes = [f"*{md_escape(t.name)}*: {md_escape(item, 300)}" for t in tiers for item in list(t.checklist)[:1]]
    return ["", "**From the tiers.**", bullets(notes)] if notes else []


# --------------------------------------------------------------------------------------------------
# one shape per conversation type


def debugging(g: Guide) -> str:
    pattern = g.pattern
    if pattern is not None:
        causes = "; ".join(md_escape(c, 120) for c in list(pattern.causes)[:4])
        cause = (f"It sounds like **{md_escape(pattern.title)}** ({code_span(pattern.id)}): "
                 f"{md_escape(pattern.explanation, 300)}" + (f" Usual causes: {causes}." if causes else ""))
    else:
        cause = f"Not diagnosed yet. What usually goes wrong here: {' '.join(g.pitfalls[:2])}"
    out = [f"**Likely cause.** {cause}", "", "**Evidence.**"]
    out += [f"- {f}" for f in g.live] + [f"- {q}" for q in g.questions[: 3 if g.live else 4]]
    steps = ([md_escape(pattern.fix, 300)] if pattern is not None else []) + g.checklist
    out += ["", "**Next step.**", bullets(steps[:4], numbered=True)]
    return "\n".join(out + _from_the_tiers(g.tiers))


def analysis(g: Guide) -> str:
    out = [f"**{md_escape(g.program.name)}** — {g.summary}", ""]
    if g.snapshot is not None:
        out += [status_table(g.snapshot), ""]
    out += _live_lines(g)
    out += ["| step | what to check |", "|---:|---|"] + [f"| {i} | {c} |" for i, c in enumerate(g.checklist[:5], 1)]
    out += ["", "**Questions to settle first.**", bullets(g.questions[:3])]
    return "\n".join(out)


def explanation(g: Guide) -> str:
    focus: Tier | Program = g.tiers[0] if g.tiers else g.program
    example = list(focus.checklist) or list(g.program.checklist)
    why = list(focus.pitfalls) or list(g.program.pitfalls)
    out = [f"**Concept.** {md_escape(focus.summary, 400)}", "",
           f"**Why it matters.** Getting it wrong looks like this: {' '.join(md_escape(w, 300) for w in why[:2])}", "",
           f"**Example.** {md_escape(example[0], 300)}" if example else ""]
    more = [md_escape(q, 300) for q in list(focus.questions)[:2]] + g.questions[:1]
    if more:
        out += ["", "**To go further, ask yourself.**", bullets(more)]
    return "\n".join(out)


def question_answering(g: Guide) -> str:
    short = md_escape(first_sentence(g.program.summary), 300)
    first = g.answer or (f"**Short answer:** {short}" if g.route.keywords
                         else f"**Short answer:** I have no stored fact for “{g.ask}”; the closest guidance is "
                              f"{md_escape(g.program.name)}: {short}")
    out = [first, ""]
    out += [f"- {f}" for f in g.live]
    out += ["**Worth checking.**", bullets(g.checklist[:3])]
    return "\n".join(out)


def code_generation(g: Guide) -> str:
    lang = _language(g.program.id, g.text)
    task = " ".join(CONTROL.sub(" ", g.text).split())[:100] or "the task"
    sketch = _code_sketch(lang, task, list(g.program.checklist[:5]))
    out = [f"A sketch for “{g.ask}”, following {md_escape(g.program.name)}: {g.summary}", "", sketch, "",
           "**Decide before filling it in.**", bullets(g.questions[:3]), "", "**Pitfalls.**", bullets(g.pitfalls)]
    return "\n".join(out)


def architecture(g: Guide) -> str:
    out = [f"**Design.** {g.summary}", "", "**Decide first.**", bullets(g.questions[:4]), "",
           "**Design checklist.**", bullets(g.checklist[:5], numbered=True), "", "**Trade-offs to watch.**",
           bullets(g.pitfalls)]
    return "\n".join(out + _from_the_tiers(g.tiers))


def optimization(g: Guide) -> str:
    out = [f"**Goal.** {g.summary}", ""]
    out += _live_lines(g)
    out += ["**Measure first.**", bullets(g.questions[:3]), "", "**Then.**", bullets(g.checklist[:5], numbered=True),
            "", "**Avoid.**", bullets(g.pitfalls)]
    return "\n".join(out)


def testing(g: Guide) -> str:
    out = [f"**Approach.** {g.summary}", "", "**Test plan.**", bullets(g.checklist[:6], task=True), "",
           "**Cover these questions.**", bullets(g.questions[:3]), "", "**Traps.**", bullets(g.pitfalls)]
    return "\n".join(out)


def refactoring(g: Guide) -> str:
    out = [f"**Goal.** {g.summary}", "", "**Safe steps.**", bullets(g.checklist[:6], numbered=True), "",
           "**Keep the behaviour the same.**", bullets(g.pitfalls), "", "**Before you start.**",
           bullets(g.questions[:3])]
    return "\n".join(out)


def general_chat(g: Guide) -> str:
    lowered = g.text.lower()
    if _THANKS.search(lowered):
        opener = "You're welcome."
    elif _BYE.search(lowered):
        opener = "Bye — Aurora keeps watching the fleet."
    elif _GREETING.search(lowered):
        opener = "Hello! I'm Aurora's dispatcher."
    elif not g.text.strip():
        opener = "That message was empty."
    else:
        opener = "I'm Aurora's dispatcher: I answer questions about the fleet and give engineering guidance."
    out = [opener]
    if g.snapshot is not None:
        out += ["", fleet_health_line(g.snapshot)]
    out += ["", "Try `status`, `incidents`, `why <service>` or ask a question; **help** lists every command."]
    return "\n".join(out)


#: The shape of each conversation type's answer, by the type's name.
GUIDES: dict[str, Callable[[Guide], str]] = {
    f.__name__: f for f in (code_generation, debugging, explanation, architecture, optimization, testing,
                            general_chat, question_answering, analysis, refactoring)
}
assert set(GUIDES) == set(CONVERSATION_TYPES)


def guidance(route: Route, text: str, program: Program | None, tiers: Sequence[Tier], *,
             snapshot: FleetSnapshot | None = None, facts: Sequence[str] = (), answer: str | None = None,
             pattern: Pattern | None = None) -> str:
    """A non-command reply from the catalogue guidance of ``program`` and ``tiers``, shaped by the route's
    type.  ``facts`` are live lines about the fleet (evidence); ``answer`` is a one-line answer already
    known (a question about a service's port, pid …); ``snapshot`` adds the status table where natural;
    ``pattern`` is an issue pattern the message describes (a debugging reply leads with it)."""
    if program is None:
        return "I could not place that message. Type **help** to see what I can do."
    guide = Guide(route, text, program, tiers, snapshot, [f for f in facts if f], answer, pattern)
    return GUIDES.get(route.type or "general_chat", general_chat)(guide)
