"""The approval queue and what was learned, through the running engine."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.api import PLAN_STATUSES, PlanRow
from ..core.model import to_jsonable
from ..core.remote import RemoteEngine
from .common import grade, on_engine, print_json, run_on, target_options

PLAN_FIELDS = ("id", "service", "pattern", "actions", "confidence", "risk", "verdicts", "status", "incident_id", "summary")


def register(sub: argparse._SubParsersAction) -> None:
    approvals_p = sub.add_parser("approvals", help="fix plans waiting for the operator")
    target_options(approvals_p)
    approvals_p.add_argument("--json", action="store_true")
    approvals_p.add_argument("--all", action="store_true", help="every plan, not only pending ones")
    approvals_p.add_argument("--status", choices=PLAN_STATUSES, help="only plans with this status")
    approvals_p.add_argument("-n", "--limit", type=int, default=50)
    approvals_p.set_defaults(func=approvals)

    approve_p = sub.add_parser("approve", help="approve a pending fix plan")
    target_options(approve_p)
    approve_p.add_argument("id", type=int)
    approve_p.add_argument("--grade", type=grade)
    approve_p.add_argument("--comment", default="")
    approve_p.set_defaults(func=approve)

    reject_p = sub.add_parser("reject", help="reject a pending fix plan")
    target_options(reject_p)
    reject_p.add_argument("id", type=int)
    reject_p.add_argument("--reason", required=True)
    reject_p.set_defaults(func=reject)

    grade_p = sub.add_parser("grade", help="grade a decided fix plan 1-10")
    target_options(grade_p)
    grade_p.add_argument("id", type=int)
    grade_p.add_argument("grade", type=grade)
    grade_p.set_defaults(func=grade_plan)

    learning_p = sub.add_parser("learning", help="what Aurora has learned about each fix")
    target_options(learning_p)
    learning_p.add_argument("--json", action="store_true")
    learning_p.add_argument("--export", type=Path, metavar="FILE", help="write it to FILE as JSON")
    learning_p.add_argument("--import", dest="import_file", type=Path, metavar="FILE", help="load beliefs from FILE")
    learning_p.set_defaults(func=learning)


@on_engine
async def approvals(engine: RemoteEngine, args: argparse.Namespace) -> int:
    rows = await engine.list_plans(status=args.status or (None if args.all else "pending"), limit=args.limit)
    if args.json:
        print_json([{k: plan[k] for k in PLAN_FIELDS} for plan in to_jsonable(rows)])
        return 0
    if not rows:
        print("no plans waiting for a decision")
        return 0
    for r in rows:
        print(f"#{r.id}  {r.status:<10} {r.service:<14} {r.pattern:<22} risk {r.risk:<6} confidence {r.confidence}/10")
        print(f"      why: {r.summary[:110]}")
        for a in r.actions:
            print(f"      do:  {a['detail'][:110]}")
        for v in r.verdicts:
            print(f"      {v['level']} {v['outcome']:<7} {'; '.join(v['reasons'])[:100]}")
    return 0


def _decided(row: PlanRow) -> None:
    print(f"plan #{row.id} ({row.fix} for {row.pattern} on {row.service}): {row.status}")


@on_engine
async def approve(engine: RemoteEngine, args: argparse.Namespace) -> int:
    _decided(await engine.approve(args.id, grade=args.grade, comment=args.comment))
    return 0


@on_engine
async def reject(engine: RemoteEngine, args: argparse.Namespace) -> int:
    _decided(await engine.reject(args.id, reason=args.reason))
    return 0


@on_engine
async def grade_plan(engine: RemoteEngine, args: argparse.Namespace) -> int:
    row = await engine.grade(args.id, args.grade)
    print(f"plan #{row.id} graded {row.grade}/10")
    return 0


def learning(args: argparse.Namespace) -> int:
    if args.import_file:
        # The file is read before the engine is asked: a bad file is bad usage (2) with or without one.
        try:
            entries = json.loads(args.import_file.read_text())
        except (OSError, ValueError) as exc:
            print(f"aurora: cannot read {args.import_file}: {exc}", file=sys.stderr)
            return 2
        result = run_on(args, lambda engine: engine.import_learning(entries))
        print(f"imported {result.imported} beliefs from {args.import_file}")
        return 0
    rows = run_on(args, lambda engine: engine.learning())
    if args.export:
        args.export.write_text(json.dumps(to_jsonable(rows), indent=2))
        print(f"wrote {len(rows)} beliefs to {args.export}")
        return 0
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("nothing learned yet")
        return 0
    print(f"{'PATTERN':<24} {'FIX':<22} {'BELIEF':>6} {'OK':>4} {'FAIL':>4} {'REJ':>4}")
    for r in rows:
        flag = "  (no longer proposed on its own)" if r.refused else ""
        print(f"{r.pattern:<24} {r.fix:<22} {r.mean:>6.0%} {r.successes:>4} {r.failures:>4} {r.rejections:>4}{flag}")
    return 0
