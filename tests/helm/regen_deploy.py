"""Writes deploy/ from the chart: see chartlib.expected_deploy()."""

import sys

from chartlib import DEPLOY, actual_deploy, expected_deploy


def main() -> int:
    want = expected_deploy()
    for stale in set(actual_deploy()) - set(want):
        (DEPLOY / stale).unlink()
        print(f"removed deploy/{stale}", file=sys.stderr)
    for rel, text in want.items():
        path = DEPLOY / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote deploy/{rel}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
