"""Reading pickled PyTorch files without running their code or allocating what they claim.

`torch_load_safely` is `torch.load(weights_only=True)`: plain tensors and containers only, so a file that
would run code while unpickling is refused, never executed. Before that, a legacy (not zip) file is read once
by `check_legacy_storage_sizes` with a bounded, stubbed unpickler, because torch allocates each legacy
storage at the size its pickle declares before finding the bytes missing. Every failure is one WeightsError
line that says what was refused and why. `sniff_format` tells the file kinds apart from their first bytes.
"""

from __future__ import annotations

import pickle
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gptviz.errors import WeightsError


def sniff_format(path: Path) -> str:
    """'safetensors', 'zip' (torch.save), 'pickle' (legacy torch.save) or 'unknown', from the first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read: {exc.strerror}") from None
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"  # 8-byte little-endian header length, then the JSON header
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"  # pickle protocol 2-5 opcode
    return "unknown"


# Bytes an element of each storage type a legacy torch.save names ('torch FloatStorage'); a name not here
# counts 1 byte, so an unknown type can only make the check below more lenient, never refuse a good file.
_STORAGE_ELEMENT_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
_LEGACY_PICKLES_BEFORE_DATA = 3  # a legacy file: magic number, protocol version, sys_info, then the data
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle


class _Stub:
    """What a global in a pickle becomes while its storages are counted: a name, never the real object.
    It takes whatever a state dict's pickle does to its objects (calls, setstate, items, appends)."""

    gptviz_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _BoundedReader:
    """A file handle whose reads never ask for more than the file has left: pickle's length prefixes
    (BINUNICODE, BINBYTES8, FRAME) become short reads, never allocations of what they claim."""

    def __init__(self, handle: Any, size: int) -> None:
        self.handle = handle
        self.size = size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.handle.tell())
        return self.handle.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.handle.readline()

    def readinto(self, buffer: Any) -> int:
        return self.handle.readinto(buffer)


class _StorageCounter(pickle._Unpickler):  # the pure-Python unpickler: every read goes through the file
    """Reads a legacy torch.save pickle without importing or calling anything of its own: every global is a
    `_Stub`, and each storage's persistent id ('storage', type, key, location, numel, ...) is counted."""

    dispatch = dict(pickle._Unpickler.dispatch)
    read: Callable[[int], bytes]  # bound by pickle._Unpickler.load() before any opcode runs
    append: Callable[[Any], None]  # likewise

    def __init__(self, handle: _BoundedReader) -> None:
        super().__init__(handle)
        self.reader = handle
        self.storage_bytes: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Stub,), {"gptviz_name": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            if isinstance(numel, int) and not isinstance(numel, bool) and numel > 0:
                name = str(getattr(kind, "gptviz_name", "")).rpartition(".")[2]
                size = numel * _STORAGE_ELEMENT_BYTES.get(name, 1)
                self.storage_bytes[str(key)] = max(size, self.storage_bytes.get(str(key), 0))
        return None

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 would allocate (and zero) its claimed length before reading: check it first."""
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self.reader.size:
            raise pickle.UnpicklingError(f"a bytearray of {length:,} bytes in a file of {self.reader.size:,}")
        self.append(bytearray(self.read(length)))

    # typeshed types the table's entries as taking a base Unpickler; this one is only called with self
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8  # type: ignore[assignment]


def check_legacy_storage_sizes(path: Path) -> None:
    """Refuse a legacy (not zip) torch.save file whose pickle declares more tensor bytes than the file holds.

    torch.load allocates each storage of a legacy file at the size its pickle declares, before it reads the
    storage's bytes and finds them missing: a 400-byte file declaring (2**31 - 1) floats made it ask for
    8 GiB. A legacy file stores every storage's bytes after its pickles, so the declared total can never
    exceed the file's size. This reads the pickles first with `_StorageCounter` (nothing imported, nothing
    called, no read longer than the file) and compares. A pickle it cannot read is refused too: torch's
    own reader would allocate a length prefix's claim while failing on it. A plain pickle (no torch magic
    number first) is read through once the same way, then left to torch.load, which names what it refuses. Zip files need none of this:
    torch reads data.pkl whole and compares each record's size with the declared one before allocating."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            reader = _BoundedReader(handle, size)
            if _StorageCounter(reader).load() != _LEGACY_MAGIC_NUMBER:
                return  # a plain pickle, read through once: torch.load names what it refuses in it
            for _ in range(_LEGACY_PICKLES_BEFORE_DATA - 1):
                _StorageCounter(reader).load()
            counter = _StorageCounter(reader)
            counter.load()
            _StorageCounter(reader).load()  # the storage keys, in the order their bytes follow
    except Exception as exc:  # noqa: BLE001 - any failure of a damaged pickle means the same to the user
        first = (str(exc).splitlines() or [""])[0]
        raise WeightsError(
            f"{path} is damaged or not a PyTorch file: {type(exc).__name__}: {first}"
        ) from None
    declared = sum(counter.storage_bytes.values())
    if declared > size:
        raise WeightsError(
            f"{path} is damaged or crafted: its pickle declares {declared:,} bytes of tensors but the file "
            f"holds {size:,} bytes; refused before loading"
        )


def torch_load_safely(path: Path) -> Any:
    """torch.load with weights_only=True: plain tensors and containers only, no code runs while unpickling.
    A legacy (not zip) file is first checked not to declare more tensor bytes than it holds."""
    path = Path(path)
    if sniff_format(path) == "pickle":
        check_legacy_storage_sizes(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (it references {found.group(1)})" if found else ""
            raise WeightsError(
                f"{path} refused: it needs code execution to unpickle{what}; only plain tensors are read. "
                "If you trust the file, re-save its state_dict with safetensors and import that."
            ) from None
        raise WeightsError(f"{path} is damaged or not a PyTorch file: {text.splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - a broken zip/pickle raises many kinds; all mean "damaged"
        first = (str(exc).splitlines() or [""])[0]  # torch's argument errors run over many lines
        raise WeightsError(
            f"{path} is damaged or not a PyTorch file: {type(exc).__name__}: {first}"
        ) from None
    return obj
