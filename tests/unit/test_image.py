"""The image archives of supervisor.local.image: contents, layers, determinism (offline)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from supervisor.local.image import (
    BUSYBOX,
    GLIBC_COMMANDS,
    build_busybox_image,
    build_glibc_image,
    build_layered_image,
    elf_interpreter,
    is_static_elf,
    main,
    parse_ld_list,
)

DASH = Path("/bin/dash")
MARKER = "/etc/supervisor-image-marker"

needs_busybox = pytest.mark.skipif(
    not BUSYBOX.is_file(), reason="/bin/busybox missing: apt-get install busybox-static")
needs_dash = pytest.mark.skipif(not DASH.is_file(), reason="/bin/dash missing: apt-get install dash")


def read_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None, name
        return handle.read()


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {member.name: member for member in tar.getmembers()}


def layers(archive: bytes) -> list[bytes]:
    """The layer tarballs of a ``docker save`` archive, bottom first."""
    manifest = json.loads(read_member(archive, "manifest.json"))
    return [read_member(archive, name) for name in manifest[0]["Layers"]]


def config(archive: bytes) -> dict[str, Any]:
    manifest = json.loads(read_member(archive, "manifest.json"))
    value: dict[str, Any] = json.loads(read_member(archive, manifest[0]["Config"]))
    return value


# --- ELF helpers (pure) -------------------------------------------------------------------


@needs_dash
def test_elf_interpreter_of_the_host_shell_is_its_loader() -> None:
    interpreter = elf_interpreter(DASH)
    assert interpreter is not None and interpreter.startswith("/") and "ld-" in interpreter
    assert elf_interpreter(DASH.read_bytes()) == interpreter
    assert not is_static_elf(DASH)


@needs_busybox
def test_static_busybox_is_static_and_has_no_interpreter() -> None:
    assert is_static_elf(BUSYBOX) and is_static_elf(BUSYBOX.read_bytes())
    assert elf_interpreter(BUSYBOX) is None


def test_scripts_and_junk_are_neither_static_nor_dynamic(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    for source in (script, b"", b"\x7fELF", b"\x7fELF" + b"\0" * 10):
        assert elf_interpreter(source) is None
    assert not is_static_elf(script) and not is_static_elf(b"")


def test_parse_ld_list_keeps_paths_and_the_loader_in_order() -> None:
    text = ("\tlinux-vdso.so.1 (0x00007ffd0a1f3000)\n"
            "\tlibselinux.so.1 => /lib/x86_64-linux-gnu/libselinux.so.1 (0x00007f0c0a5d1000)\n"
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c0a3ef000)\n"
            "\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c0a62e000)\n"
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c0a3ef000)\n")
    assert parse_ld_list(text) == ["/lib/x86_64-linux-gnu/libselinux.so.1",
                                   "/lib/x86_64-linux-gnu/libc.so.6",
                                   "/lib64/ld-linux-x86-64.so.2"]
    assert parse_ld_list("\tstatically linked\n") == []


def test_parse_ld_list_refuses_a_missing_library() -> None:
    with pytest.raises(ValueError, match="libgone.so.1 not found"):
        parse_ld_list("\tlibgone.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n")


# --- the busybox image with extra files ---------------------------------------------------


@needs_busybox
def test_busybox_image_carries_extra_files_and_their_directories(tmp_path: Path) -> None:
    image = build_busybox_image(tmp_path / "bb.tar", files={
        MARKER: b"busybox\n", "/opt/tools/hello.txt": b"hi", "etc/passwd": b"nobody:x:1:1::/:/\n"})
    layer = layers(image.read_bytes())[0]
    files = members(layer)
    assert read_member(layer, MARKER.lstrip("/")) == b"busybox\n"
    assert files["opt"].isdir() and files["opt/tools"].isdir()
    assert files["opt/tools/hello.txt"].mode == 0o644
    assert read_member(layer, "etc/passwd") == b"nobody:x:1:1::/:/\n"
    assert list(files) == sorted(files)


@needs_busybox
def test_busybox_image_without_extra_files_is_unchanged_by_an_empty_mapping(
        tmp_path: Path) -> None:
    plain = build_busybox_image(tmp_path / "a.tar").read_bytes()
    assert build_busybox_image(tmp_path / "b.tar", files={}).read_bytes() == plain


@needs_busybox
@pytest.mark.parametrize("path", ["/../etc/x", "a/../../b", "/", ""])
def test_extra_files_may_not_leave_the_image_root(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="invalid path in image"):
        build_busybox_image(tmp_path / "x.tar", files={path: b"x"})
    assert not (tmp_path / "x.tar").exists()


# --- the glibc image ----------------------------------------------------------------------


@needs_dash
def test_glibc_image_runs_the_hosts_dynamic_shell_with_its_loader(tmp_path: Path) -> None:
    image = build_glibc_image(tmp_path, files={MARKER: b"glibc\n"})
    assert image == tmp_path / "glibc-image.tar"
    archive = image.read_bytes()
    manifest = json.loads(read_member(archive, "manifest.json"))
    assert manifest[0]["RepoTags"] == ["supervisor/glibc:latest"]
    assert config(archive)["config"] == {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                                         "Cmd": ["/bin/sh"], "WorkingDir": "/"}
    (layer,) = layers(archive)
    files = members(layer)

    shell = read_member(layer, "bin/sh")
    assert files["bin/sh"].isreg() and shell == DASH.read_bytes()
    assert read_member(layer, "bin/dash") == shell
    loader = elf_interpreter(shell)
    assert loader is not None and not is_static_elf(shell)
    assert files[loader.lstrip("/")].isreg()
    assert read_member(layer, loader.lstrip("/")) == Path(os.path.realpath(loader)).read_bytes()
    libc = [name for name in files if os.path.basename(name).startswith("libc.so")]
    assert libc and all(files[name].isreg() for name in libc)

    for command in GLIBC_COMMANDS:
        assert files[f"bin/{command}"].isreg() and files[f"bin/{command}"].mode & stat.S_IXUSR
        assert files[f"usr/bin/{command}"].linkname == f"../../bin/{command}"
    assert not [name for name in files if "python" in os.path.basename(name)]
    assert read_member(layer, MARKER.lstrip("/")) == b"glibc\n"
    assert b"root:x:0:0:" in read_member(layer, "etc/passwd")
    assert read_member(layer, "etc/group").startswith(b"root:x:0:")
    assert files["tmp"].isdir() and files["tmp"].mode == 0o1777


@needs_dash
def test_glibc_image_is_deterministic(tmp_path: Path) -> None:
    first = build_glibc_image(tmp_path / "a.tar", tag="demo/glibc:v1").read_bytes()
    second = build_glibc_image(tmp_path / "b.tar", tag="demo/glibc:v1").read_bytes()
    assert first == second
    assert all(member.mtime == 0 for member in members(first).values())
    assert all(member.mtime == 0 and member.uid == 0 for member in members(layers(first)[0]).values())


@needs_dash
def test_glibc_image_names_a_missing_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-command-here not found"):
        build_glibc_image(tmp_path / "x.tar", commands=("cat", "no-such-command-here"))
    assert not (tmp_path / "x.tar").exists()


@needs_busybox
def test_glibc_image_refuses_a_static_shell(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a dynamically linked"):
        build_glibc_image(tmp_path / "x.tar", shell=BUSYBOX)


# --- the layered image --------------------------------------------------------------------


@needs_busybox
def test_layered_image_has_the_busybox_layer_and_one_layer_per_size(tmp_path: Path) -> None:
    sizes = [100_000, 0, 250_000]
    archive = build_layered_image(tmp_path / "l.tar", tag="bench/layers:v1",
                                  layer_bytes=sizes, seed=7).read_bytes()
    found = layers(archive)
    assert len(found) == len(sizes) + 1
    assert "bin/busybox" in members(found[0])
    rootfs = config(archive)["rootfs"]
    assert rootfs == {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(layer).hexdigest() for layer in found]}
    blobs = []
    for number, (layer, size) in enumerate(zip(found[1:], sizes), 1):
        files = members(layer)
        assert sorted(files) == ["data", f"data/layer-{number}.bin"]
        assert files[f"data/layer-{number}.bin"].size == size
        blobs.append(read_member(layer, f"data/layer-{number}.bin"))
    assert blobs[0] != blobs[2][:len(blobs[0])]  # each layer its own bytes
    assert len(set(rootfs["diff_ids"])) == len(found)


@needs_busybox
def test_layered_image_data_is_incompressible_and_fixed_by_the_seed(tmp_path: Path) -> None:
    import zlib

    first = build_layered_image(tmp_path / "a.tar", layer_bytes=[200_000], seed=1).read_bytes()
    again = build_layered_image(tmp_path / "b.tar", layer_bytes=[200_000], seed=1).read_bytes()
    other = build_layered_image(tmp_path / "c.tar", layer_bytes=[200_000], seed=2).read_bytes()
    assert first == again and first != other
    data = read_member(layers(first)[1], "data/layer-1.bin")
    assert len(zlib.compress(data)) > 0.99 * len(data)


@needs_busybox
def test_layered_layers_chain_their_v1_parents(tmp_path: Path) -> None:
    archive = build_layered_image(tmp_path / "l.tar", layer_bytes=[10, 20]).read_bytes()
    manifest = json.loads(read_member(archive, "manifest.json"))
    ids = [name.split("/")[0] for name in manifest[0]["Layers"]]
    metadata = [json.loads(read_member(archive, f"{layer_id}/json")) for layer_id in ids]
    assert "parent" not in metadata[0]
    assert [meta["parent"] for meta in metadata[1:]] == ids[:-1]
    assert json.loads(read_member(archive, "repositories")) == {
        "supervisor/layered": {"latest": ids[-1]}}


@needs_busybox
def test_layered_image_refuses_a_negative_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layer size"):
        build_layered_image(tmp_path / "x.tar", layer_bytes=[-1])


# --- the command line ---------------------------------------------------------------------


@needs_dash
def test_cli_builds_each_kind(tmp_path: Path) -> None:
    assert main([str(tmp_path / "g.tar"), "--kind", "glibc", "--tag", "x/g:1"]) == 0
    manifest = json.loads(read_member((tmp_path / "g.tar").read_bytes(), "manifest.json"))
    assert manifest[0]["RepoTags"] == ["x/g:1"]
    if BUSYBOX.is_file():
        assert main([str(tmp_path / "l.tar"), "--kind", "layered", "--layer-bytes", "5", "6"]) == 0
        assert len(layers((tmp_path / "l.tar").read_bytes())) == 3
