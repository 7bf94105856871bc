"""Writes torch.save fixtures for tests/io/test_torch_pickle.cpp into OUT_DIR (run at test time).

Usage: python make_torch_pickles.py OUT_DIR

Good files (each loaded by the C++ reader and compared exactly with the tensors that were saved):
  sd_ordered.bin   Module.state_dict(): an OrderedDict with _metadata (BUILD), every dtype, tied weights,
                   a transposed tensor, a 0-d and an empty tensor, a slice with a storage offset
  plain.bin        {'p': nn.Parameter}: a one-item plain dict (SETITEM) and _rebuild_parameter
  archive.bin      the state dict saved through a BytesIO, so the folder is 'archive' instead of the stem
  proto4.bin       the state dict with pickle_protocol=4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
  zip64.bin        sd_ordered.bin's members rewritten as a ZIP64 archive (every size/offset in ZIP64 fields)
expected.txt lists, per good file and key in dict order: dtype, sizes, strides, storage offset and where
the tensor's contiguous bytes lie in expected.raw; 'share FILE A B' lines name tensors saved on one storage.

Bad files (each must be refused with a clear error and nothing executed): see BAD below.
"""

import collections
import io
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch
from torch import nn

OUT = sys.argv[1]
MARKER = os.path.join(OUT, "pwned")  # what the malicious pickles would create if they were executed


def path(name):
    return os.path.join(OUT, name)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 3)
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.embedding.weight  # tied: both keys name one storage
        big = torch.arange(1.0, 11.0, dtype=torch.float32)
        self.register_buffer("big", big)
        self.register_buffer("window", big[3:7])  # storage offset 3 into big's storage
        self.register_buffer("transposed", torch.randn(3, 4).t())  # stride (1, 4)
        self.register_buffer("f16", torch.randn(5).half())
        self.register_buffer("bf16", torch.randn(2, 3).bfloat16())
        self.register_buffer("f64", torch.randn(3, dtype=torch.float64))
        self.register_buffer("i64", torch.arange(-3, 4, dtype=torch.int64) * (2**40))
        self.register_buffer("i32", torch.tensor([-7, 1, 2**31 - 1], dtype=torch.int32))
        self.register_buffer("i16", torch.tensor([-300, 5], dtype=torch.int16))
        self.register_buffer("i8", torch.tensor([-128, 127, 3], dtype=torch.int8))
        self.register_buffer("u8", torch.tensor([0, 200, 255], dtype=torch.uint8))
        self.register_buffer("flags", torch.tensor([True, False, True]))
        self.register_buffer("scalar", torch.tensor(2.5))
        self.register_buffer("empty", torch.empty(0, 3))


def dtype_name(dt):
    # LibTorch's c10::toString(ScalarType) spelling, which the C++ test compares with.
    return {torch.float32: "Float", torch.float16: "Half", torch.bfloat16: "BFloat16", torch.float64: "Double",
            torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char",
            torch.uint8: "Byte", torch.bool: "Bool"}[dt]


def ints(xs):
    return ",".join(str(int(x)) for x in xs) or "-"


def write_expected(files):
    lines, raw = [], bytearray()
    for name, sd in files:
        by_storage = {}
        for key, t in sd.items():
            data = bytes(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy())
            lines.append(f"tensor {name} {key} {dtype_name(t.dtype)} {ints(t.shape)} {ints(t.stride())} "
                         f"{t.storage_offset()} {len(raw)} {len(data)}")
            raw += data
            if t.numel() > 0:
                ptr = t.untyped_storage().data_ptr()
                if ptr in by_storage:
                    lines.append(f"share {name} {by_storage[ptr]} {key}")
                else:
                    by_storage[ptr] = key
    with open(path("expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(path("expected.raw"), "wb") as f:
        f.write(raw)


def zip_members(file):
    with zipfile.ZipFile(file) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(file, members, zip64=False, align=64):
    """A stored ZIP with data aligned like torch.save's; zip64=True puts every size and offset in ZIP64
    fields (the 32-bit ones hold 0xffffffff) and ends with the ZIP64 record, locator and a marker EOCD."""
    out, cd = bytearray(), bytearray()
    full = 0xFFFFFFFF
    for name, data in members:
        nb = name.encode()
        offset = len(out)
        crc = zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data)) if zip64 else b""
        pad = (-(offset + 30 + len(nb) + len(extra) + 4)) % align
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB' padding field, as torch.save writes
        size32 = full if zip64 else len(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, size32, size32, len(nb), len(extra))
        out += nb + extra
        assert len(out) % align == 0
        out += data
        cd_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset) if zip64 else b""
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, size32, size32, len(nb),
                          len(cd_extra), 0, 0, 0, 0, full if zip64 else offset)
        cd += nb + cd_extra
    cd_offset = len(out)
    out += cd
    n = len(members)
    if zip64:
        record = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, record, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, full, full, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), cd_offset, 0)
    with open(file, "wb") as f:
        f.write(out)


# ---- hand-made pickles: tensors over storages that need not match what they claim ----
class FakeStorage:
    def __init__(self, key, numel, storage_type=torch.FloatStorage):
        self.key, self.numel, self.storage_type = key, numel, storage_type


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def crafted(name, obj, storages, prefix="crafted"):
    buf = io.BytesIO()
    StoragePickler(buf, protocol=2).dump(obj)
    write_raw_pickle(name, buf.getvalue(), storages, prefix)


def write_raw_pickle(name, pkl, storages=None, prefix="crafted"):
    members = [(f"{prefix}/data.pkl", pkl), (f"{prefix}/byteorder", b"little")]
    members += [(f"{prefix}/data/{k}", v) for k, v in (storages or {}).items()]
    members.append((f"{prefix}/version", b"3\n"))
    write_zip(path(name), members)


class Evil:
    """Pickles as a call of `func(*args)`: what a hostile checkpoint would run at load time."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = Small().state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    torch.save(sd, path("sd_ordered.bin"))
    plain = {"p": nn.Parameter(torch.randn(2, 3))}
    torch.save(plain, path("plain.bin"))
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=True)
    with open(path("archive.bin"), "wb") as f:
        f.write(buf.getvalue())
    torch.save(sd, path("proto4.bin"), pickle_protocol=4)
    members = zip_members(path("sd_ordered.bin"))
    write_zip(path("zip64.bin"), members, zip64=True)
    for name in ("sd_ordered.bin", "archive.bin", "zip64.bin"):  # our archives must be valid for torch too
        back = torch.load(path(name), weights_only=True)
        assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd), name
    assert zip_members(path("archive.bin"))[0][0].startswith("archive/")
    write_expected([(n, sd) for n in ("sd_ordered.bin", "archive.bin", "proto4.bin", "zip64.bin")] +
                   [("plain.bin", plain)])

    # ---- bad files ----
    torch.save({"w": Evil(os.system, f"touch {MARKER}")}, path("evil_system.bin"))
    torch.save({"w": Evil(eval, f"open({MARKER!r}, 'w')")}, path("evil_eval.bin"))
    torch.save({"w": Evil(eval, f"open({MARKER!r}, 'w')")}, path("evil_eval4.bin"), pickle_protocol=4)
    torch.save({"w": Evil(torch.storage._load_from_bytes, b"not a pickle")}, path("load_from_bytes.bin"))
    torch.save({"w": torch.ones(2), "step": 3}, path("non_tensor.bin"))
    torch.save({"model": {"w": torch.ones(2)}}, path("nested.bin"))
    torch.save([torch.ones(2)], path("list.bin"))
    torch.save({"w": torch.ones(2)}, path("legacy.bin"), _use_new_zipfile_serialization=False)
    good = open(path("sd_ordered.bin"), "rb").read()
    with open(path("truncated.bin"), "wb") as f:
        f.write(good[: len(good) // 2])
    with zipfile.ZipFile(path("deflate.bin"), "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    write_zip(path("missing_storage.bin"), [(n, d) for n, d in members if n != "sd_ordered/data/0"])
    write_zip(path("short_storage.bin"), [(n, d[:-4] if n == "sd_ordered/data/0" else d) for n, d in members])
    write_zip(path("big_endian.bin"), [(n, b"big" if n.endswith("/byteorder") else d) for n, d in members])

    twelve = struct.pack("<12f", *range(1, 13))
    crafted("crafted_ok.bin", {"w": FakeTensor(FakeStorage("0", 12), 2, (2, 5), (5, 1))}, {"0": twelve})
    crafted("past_end.bin", {"w": FakeTensor(FakeStorage("0", 12), 0, (4, 4), (4, 1))}, {"0": twelve})
    crafted("past_end_offset.bin", {"w": FakeTensor(FakeStorage("0", 12), 9, (4,), (1,))}, {"0": twelve})
    crafted("past_end_stride.bin", {"w": FakeTensor(FakeStorage("0", 12), 0, (2, 3), (1, 6))}, {"0": twelve})
    crafted("claims_more.bin", {"w": FakeTensor(FakeStorage("0", 13), 0, (12,), (1,))}, {"0": twelve})
    crafted("huge_size.bin", {"w": FakeTensor(FakeStorage("0", 12), 0, (2**62, 2**62), (4, 1))}, {"0": twelve})
    crafted("two_dtypes.bin", {"a": FakeTensor(FakeStorage("0", 12), 0, (12,), (1,)),
                               "b": FakeTensor(FakeStorage("0", 24, torch.HalfStorage), 0, (24,), (1,))},
            {"0": twelve})
    unknown = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01\xff."  # 0xff is no pickle opcode
    write_raw_pickle("bad_opcode.bin", unknown)
    write_raw_pickle("text_opcode.bin", b"\x80\x02I1\n.")  # INT: protocol 0 text opcode
    write_raw_pickle("truncated_pickle.bin", b"\x80\x02}q\x00X\x10\x00\x00\x00abc")
    write_raw_pickle("deep.bin", b"\x80\x02" + b"(" * 200000 + b"t" * 200000 + b".")  # tuples nested 200000 deep
    write_raw_pickle("cycle.bin", b"\x80\x02]q\x00h\x00a.")  # a list that contains itself
    write_raw_pickle("bad_memo.bin", b"\x80\x02h\x07.")
    write_raw_pickle("empty_stack.bin", b"\x80\x02s.")
    assert not os.path.exists(MARKER), "a fixture was executed while writing it"


if __name__ == "__main__":
    main()
