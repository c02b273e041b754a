"""No container engine runs here, so the Dockerfiles cannot be built in
tests. These checks keep them in step with the repository: the workspace
members they copy, the packages and binaries they build, the non-root user
and port the chart expects, the path the operator's init container copies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from chartlib import REPO, load_chart

DOCKERFILES = {
    "operator": REPO / "operator" / "Dockerfile",
    "launcher": REPO / "launcher" / "Dockerfile",
    "node-app": REPO / "examples" / "node-app" / "Dockerfile",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and heredoc
    bodies skipped."""
    out: list[tuple[str, str]] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        heredoc = re.search(r"<<-?['\"]?(\w+)['\"]?", rest)
        if heredoc:
            end = heredoc.group(1)
            while i < len(lines) and lines[i].strip() != end:
                i += 1
            i += 1
    return out


def final_stage(ins: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(n for n, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last:]


def workspace_members() -> list[str]:
    return tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]


def cargo_bins(member: str) -> tuple[str, set[str]]:
    manifest = tomllib.loads((REPO / member / "Cargo.toml").read_text())
    return manifest["package"]["name"], {b["name"] for b in manifest.get("bin", [])}


@pytest.mark.parametrize("name", ["operator", "launcher"])
def test_rust_images_copy_the_whole_workspace_and_build_a_real_binary(name):
    ins = instructions(DOCKERFILES[name])
    copied = {a.split()[0] for w, a in ins if w == "COPY" and not a.startswith("--from")}
    for member in workspace_members():
        assert member in copied, f"{name}/Dockerfile does not COPY workspace member {member}/: cargo would fail"
    assert {"Cargo.toml", "Cargo.lock"} <= {p for w, a in ins if w == "COPY" for p in a.split()[:-1]}
    build = " ".join(a for w, a in ins if w == "RUN" and "cargo build" in a)
    m = re.search(r"-p (\S+) --bin (\S+)", build)
    assert m, f"{name}/Dockerfile has no `cargo build -p PKG --bin BIN`"
    packages = {cargo_bins(mem)[0]: cargo_bins(mem)[1] for mem in workspace_members()}
    assert m.group(1) in packages, f"no workspace package {m.group(1)}"
    assert m.group(2) in packages[m.group(1)], f"package {m.group(1)} has no binary {m.group(2)}"
    assert "--locked" in build and "--release" in build


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_final_image_runs_as_non_root(name):
    users = [a for w, a in final_stage(instructions(DOCKERFILES[name])) if w == "USER"]
    assert users, f"{name}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), f"{name}: USER {users[-1]}"


def test_operator_image_fits_the_chart():
    ins = final_stage(instructions(DOCKERFILES["operator"]))
    with load_chart() as chart:
        values = chart.values
    (user,) = [a for w, a in ins if w == "USER"]
    assert int(user.split(":")[0]) == values["podSecurityContext"]["runAsUser"]
    (expose,) = [a for w, a in ins if w == "EXPOSE"]
    assert int(expose) == values["metrics"]["port"]
    assert ins[0][1].startswith("gcr.io/distroless/static"), "the operator runs on distroless/static"
    (entry,) = [a for w, a in ins if w == "ENTRYPOINT"]
    assert entry == '["/corefit-operator"]'


def test_launcher_image_has_corefit_where_the_init_container_copies_it_from():
    # operator/src/desired.rs: the init container runs `cp /corefit <dir>/corefit`.
    desired = (REPO / "operator" / "src" / "desired.rs").read_text()
    assert '"cp".to_owned()' in desired and '"/corefit".to_owned()' in desired, (
        "the operator's init container no longer runs `cp /corefit ...`: update launcher/Dockerfile"
    )
    ins = final_stage(instructions(DOCKERFILES["launcher"]))
    assert ins[0][0] == "FROM" and "busybox" in ins[0][1], "the launcher image needs a static `cp`"
    assert ("COPY", "--from=build /out/corefit /corefit") in ins


def test_example_app_uses_corefit_as_entrypoint():
    ins = instructions(DOCKERFILES["node-app"])
    final = final_stage(ins)
    assert ("ENTRYPOINT", '["corefit"]') in final
    (cmd,) = [a for w, a in final if w == "CMD"]
    assert cmd.startswith('["--",'), "the app's command follows `--`"
    assert any(w == "COPY" and "/corefit /usr/local/bin/corefit" in a for w, a in final)
