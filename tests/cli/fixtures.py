"""Hostile inputs for the CLI tests, with the standard library only (any python3):

  fixtures.py config SRC DST KEY=JSON...   copy model folder SRC to DST, setting config.json keys
  fixtures.py fill SRC DST TENSOR VALUE    copy SRC to DST with every element of F32 TENSOR set to VALUE (inf, nan, 1.5)
  fixtures.py flip FILE OFFSET COUNT       flip COUNT bytes of FILE starting at OFFSET (negative: from the end)
  fixtures.py deep N OPEN CLOSE [PREFIX SUFFIX]   print PREFIX + OPEN*N + CLOSE*N + SUFFIX (one line)
  fixtures.py header-depth SRC DST N       copy SRC to DST with the safetensors header's metadata nested N deep
"""
import json
import os
import shutil
import struct
import sys


def copy(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def main(argv):
    cmd = argv[1]
    if cmd == "config":
        src, dst = argv[2], argv[3]
        copy(src, dst)
        cfg_path = os.path.join(dst, "config.json")
        cfg = json.load(open(cfg_path))
        for kv in argv[4:]:
            key, value = kv.split("=", 1)
            cfg[key] = json.loads(value)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
    elif cmd == "fill":
        src, dst, name, value = argv[2], argv[3], argv[4], float(argv[5])
        copy(src, dst)
        path = os.path.join(dst, "model.safetensors")
        n, header = read_header(path)
        entry = header[name]
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        with open(path, "r+b") as f:
            f.seek(8 + n + begin)
            f.write(struct.pack("<f", value) * ((end - begin) // 4))
    elif cmd == "flip":
        path, offset, count = argv[2], int(argv[3]), int(argv[4])
        size = os.path.getsize(path)
        if offset < 0:
            offset += size
        with open(path, "r+b") as f:
            f.seek(offset)
            data = bytearray(f.read(count))
            f.seek(offset)
            f.write(bytes(b ^ 0xFF for b in data))
    elif cmd == "deep":
        n, open_, close = int(argv[2]), argv[3], argv[4]
        prefix = argv[5] if len(argv) > 5 else ""
        suffix = argv[6] if len(argv) > 6 else ""
        sys.stdout.write(prefix + open_ * n + close * n + suffix + "\n")
    elif cmd == "header-depth":
        src, dst, depth = argv[2], argv[3], int(argv[4])
        copy(src, dst)
        path = os.path.join(dst, "model.safetensors")
        n, header = read_header(path)
        with open(path, "rb") as f:
            f.seek(8 + n)
            data = f.read()
        text = json.dumps(header)
        text = text[:-1] + ', "__metadata__": ' + "[" * depth + "]" * depth + "}"
        text += " " * ((8 - len(text) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text.encode() + data)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
