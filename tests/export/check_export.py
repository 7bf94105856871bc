"""Opens mamba-ft's TorchScript archives with plain torch.jit.load and checks them against the model.

Usage: check_export.py DIR --ops-library BUILD/libmft_ops.so [--tolerance 1e-5]
DIR/manifest.json lists {"archive", "reference", "family"}; each reference .safetensors holds "ids"
(B, L) and the model's fp32 "logits" (B, L, V), written by tests/export/test_export.cpp.
Portable archives are loaded first, in this process before the op library is ever loaded (they must
need nothing but torch); a with-ops archive must then fail to load until the library its mft_requires
names is loaded with torch.ops.load_library. Checks, max normalised error max|x - ref| / max|ref|:
forward vs the model's logits, steps from init_state and prefill + steps vs forward.
"""
import argparse
import json
import os
import sys
import zipfile

import torch
from safetensors.torch import load_file


def extra_file(path, name):
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            if member.endswith("/extra/" + name):
                return z.read(member).decode()
    raise SystemExit(f"{path}: no extra file {name}")


def normalised_error(x, ref):
    x, ref = x.double(), ref.double()
    if not torch.isfinite(x).all():
        return float("inf")
    return ((x - ref).abs().max() / ref.abs().max()).item()


def stepped(m, ids, prefix):
    state = m.init_state(ids.shape[0])
    out = []
    if prefix > 0:
        logits, state = m.prefill(ids[:, :prefix], state)
        out.append(logits)
    for t in range(prefix, ids.shape[1]):
        logits, state = m.step(ids[:, t].contiguous(), state)
        out.append(logits.unsqueeze(1))
    return torch.cat(out, 1)


def check(directory, entry, tolerance):
    path = os.path.join(directory, entry["archive"])
    ref = load_file(os.path.join(directory, entry["reference"]))
    ids, ref_logits = ref["ids"].long(), ref["logits"]
    files = {"config.json": "", "mft_requires": ""}
    m = torch.jit.load(path, _extra_files=files)
    files = {k: v.decode() if isinstance(v, bytes) else v for k, v in files.items()}  # torch returns bytes
    config = json.loads(files["config.json"])
    assert config["model_type"] == entry["family"], config["model_type"]
    with torch.no_grad():
        logits = m(ids)
        errors = {
            "forward": normalised_error(logits, ref_logits),
            "steps": normalised_error(stepped(m, ids, 0), logits),
            "prefill+steps": normalised_error(stepped(m, ids, ids.shape[1] // 2), logits),
        }
    ok = logits.shape == ref_logits.shape and all(e <= tolerance for e in errors.values())
    print(f"{'ok  ' if ok else 'FAIL'} {entry['archive']:24s} requires={files['mft_requires'] or '-':14s} "
          + " ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("directory")
    p.add_argument("--ops-library", required=True)
    p.add_argument("--tolerance", type=float, default=1e-5)
    a = p.parse_args()
    entries = json.load(open(os.path.join(a.directory, "manifest.json")))
    needs = {e["archive"]: extra_file(os.path.join(a.directory, e["archive"]), "mft_requires") for e in entries}
    ok = True
    # 1. Without the op library: portable archives run; with-ops archives refuse to load.
    for e in entries:
        if not needs[e["archive"]]:
            ok &= check(a.directory, e, a.tolerance)
    for e in entries:
        if needs[e["archive"]]:
            try:
                torch.jit.load(os.path.join(a.directory, e["archive"]))
                print(f"FAIL {e['archive']}: loaded without {needs[e['archive']]}")
                ok = False
            except RuntimeError as err:
                assert "mft" in str(err), err
    # 2. The library mft_requires names, then the with-ops archives.
    for library in sorted(set(n for n in needs.values() if n)):
        assert os.path.basename(a.ops_library) == library, (a.ops_library, library)
        torch.ops.load_library(a.ops_library)
    for e in entries:
        if needs[e["archive"]]:
            ok &= check(a.directory, e, a.tolerance)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
