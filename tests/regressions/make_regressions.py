"""Write the crafted `pytorch_model.bin` files of this folder (no torch needed).

Each is a zip-format torch checkpoint whose `data.pkl` once crashed or exhausted
the pickle reader; `tests/fuzz.rs::regression_pickles_are_refused` loads them all.
Run from anywhere: `python3 tests/regressions/make_regressions.py`.
"""

import struct
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "bert.embeddings.word_embeddings.weight"


def text(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def int32(v):
    return b"J" + struct.pack("<i", v)


def ints(values):
    return b"(" + b"".join(int32(v) for v in values) + b"t"


def storage(key="0", numel=4):
    return (b"(" + text("storage") + glob("torch", "FloatStorage") + text(key)
            + text("cpu") + int32(numel) + b"tQ")


def rebuild(args):
    """_rebuild_tensor_v2(*args) with `args` already pickled (between MARK and TUPLE)."""
    return glob("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"


def tensor(offset=int32(0), shape=(2, 2), stride=(2, 1)):
    hooks = glob("collections", "OrderedDict") + b")R"
    return rebuild(storage() + offset + ints(shape) + ints(stride) + b"\x89" + hooks)


def state_dict(value):
    return b"\x80\x02}(" + text(NAME) + value + b"u."


def write(name, pickle, storage_bytes=bytes(16)):
    with zipfile.ZipFile(HERE / name, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/data/0", storage_bytes)
        z.writestr("archive/version", "3\n")


# 400 GB claimed over a 16-byte storage: the allocation aborted the process.
write("huge-claim.bin", state_dict(tensor(shape=(100000, 1000000), stride=(1000000, 1))))
# A 65-byte LONG1 storage offset: candle's decoder shifts past 64 bits (panic).
write("long1-65-bytes.bin", state_dict(tensor(offset=b"\x8a\x41" + bytes(65))))
# A negative storage offset: candle multiplies it, as usize, by the element size (panic).
write("negative-offset.bin", state_dict(tensor(offset=int32(-1))))
# _rebuild_tensor_v2 with two arguments: candle removes the fourth (panic).
write("short-rebuild-args.bin", state_dict(rebuild(storage() + int32(0))))
# A memo doubled 60 times: 2^60 copies of a 1 KB string (out of memory).
bomb = text("a" * 1000) + b"\x85q\x00" + b"h\x00h\x00\x86q\x00" * 60
write("memo-bomb.bin", state_dict(bomb))
# 300 000 nested 1-tuples: dropping them overflows the stack (SIGSEGV).
write("deep-nesting.bin", state_dict(b"N" + b"\x85" * 300_000))
