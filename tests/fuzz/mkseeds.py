#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/<target>/: a few small, valid inputs per
target in each harness's input format (see the comment at the top of each fuzz_*.c), so
a short run starts past the parsers' first checks.  Run from the repository root; the
output is deterministic.  Layouts are spelled out from the specs and <linux/fuse.h>."""
import os
import struct
import lzma

OUT = "tests/fuzz/corpus"


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- virtq: cfg, desc/avail/used offsets, image length, image, patches -------------------

def desc(addr, ln, flags, nxt):
    return struct.pack("<QIHH", addr, ln, flags, nxt)


def virtq():
    NEXT, WRITE, INDIRECT = 1, 2, 4
    D, A, U = 0x000, 0x080, 0x100   # 8-entry queue: 128-byte table, avail, used
    img = bytearray(0x300)
    table = [desc(0x200, 16, NEXT, 1), desc(0x210, 64, WRITE, 0),
             desc(0x180, 32, INDIRECT, 0)]
    for i, t in enumerate(table):
        img[D + 16 * i:D + 16 * i + 16] = t
    img[0x180:0x1a0] = desc(0x260, 8, NEXT, 1) + desc(0x270, 32, WRITE, 0)
    img[A:A + 8] = struct.pack("<HHHH", 0, 2, 0, 2)   # flags, idx 2, ring [0, 2]
    cfg = 3 | 0x08 | 0x10                            # size 8, EVENT_IDX, INDIRECT
    hdr = struct.pack("<BHHHH", cfg, D, A, U, len(img))
    # A patch: the driver publishes chain 0 again (avail idx 3, ring[2] = 0).
    patch = struct.pack("<HB", A + 2, 2) + struct.pack("<H", 3)
    write("virtq", "two-chains", hdr + bytes(img) + patch)
    # The same in high RAM, with data windows allowed and a loop in the table.
    img2 = bytearray(img)
    img2[D + 16:D + 32] = desc(0x210, 64, WRITE | NEXT, 1)
    write("virtq", "loop-high", struct.pack("<BHHHH", cfg | 0x20 | 0x40, D, A, U, len(img2)) + bytes(img2))


# ---- fuse: u8 flags, then records (u8 ctl, u16 len, request) -----------------------------

OP = dict(LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6, MKNOD=8, MKDIR=9,
          UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14, READ=15, WRITE=16, STATFS=17,
          RELEASE=18, FSYNC=20, SETXATTR=21, GETXATTR=22, LISTXATTR=23, REMOVEXATTR=24,
          FLUSH=25, INIT=26, OPENDIR=27, READDIR=28, RELEASEDIR=29, GETLK=31, SETLK=32,
          ACCESS=34, CREATE=35, DESTROY=38, BATCH_FORGET=42, FALLOCATE=43, READDIRPLUS=44,
          RENAME2=45, LSEEK=46, COPY_FILE_RANGE=47, SETUPMAPPING=48, REMOVEMAPPING=49)
ROOT, NODE0, NODE1, FH0, FH1 = 1, 0x100, 0x101, 0x200, 0x201
CTL = 0xd0      # reply buffer class 13 (8 KiB), one segment


def req(op, nodeid, body=b"", ctl=CTL, uid=1000, gid=1000):
    h = struct.pack("<IIQQIIIHH", 40 + len(body), OP[op], 7, nodeid, uid, gid, 42, 0, 0)
    r = h + body
    return struct.pack("<BH", ctl, len(r)) + r


def name(s):
    return s.encode() + b"\0"


def fuse():
    create = struct.pack("<IIII", 0o2, 0o100644, 0o022, 0)         # O_RDWR
    write_in = struct.pack("<QQIIQII", FH0, 0, 5, 0, 0, 0, 0)
    read_in = struct.pack("<QQIIQII", FH0, 0, 4096, 0, 0, 0, 0)
    release = struct.pack("<QIIQ", FH0, 0, 0, 0)
    write("fuse", "create-write-read", b"\0" +
          req("CREATE", ROOT, create + name("f")) +
          req("WRITE", NODE0, write_in + b"hello") +
          req("READ", NODE0, read_in) +
          req("GETATTR", NODE0, struct.pack("<IIQ", 1, 0, FH0)) +
          req("SETATTR", NODE0, struct.pack("<IIQQQQQQIIIIIIII", 8 | 1, 0, FH0, 2, 0, 0, 0, 0,
                                             0, 0, 0, 0o600, 0, 0, 0, 0)) +
          req("FLUSH", NODE0, struct.pack("<QIIQ", FH0, 0, 0, 0)) +
          req("RELEASE", NODE0, release))
    # Directories, links, renames, and a symlink pointing out of the share.
    write("fuse", "dirs-links", b"\0" +
          req("MKDIR", ROOT, struct.pack("<II", 0o755, 0o022) + name("d")) +
          req("LOOKUP", NODE0, name("..")) +
          req("SYMLINK", NODE0, name("l") + name("../../outside/canary")) +
          req("MKNOD", ROOT, struct.pack("<IIII", 0o10644, 0, 0o022, 0) + name("p")) +
          req("LINK", NODE0, struct.pack("<Q", NODE0) + name("h")) +
          req("RENAME2", ROOT, struct.pack("<QII", NODE0, 1, 0) + name("p") + name("q")) +
          req("OPENDIR", ROOT, struct.pack("<II", 0, 0)) +
          req("READDIRPLUS", ROOT, struct.pack("<QQIIQII", FH0, 0, 4096, 0, 0, 0, 0)) +
          req("READLINK", NODE1) +
          req("UNLINK", NODE0, name("l")) +
          req("RMDIR", ROOT, name("d")) +
          req("FORGET", NODE0, struct.pack("<Q", 1)))
    # xattrs, locks, fallocate, lseek, copy_file_range, a DAX mapping.
    lk = struct.pack("<QQQQII", FH0, 99, 0, 100, 1, 42) + struct.pack("<II", 0, 0)   # F_WRLCK
    write("fuse", "xattr-locks-dax", b"\0" +
          req("CREATE", ROOT, create + name("g")) +
          req("SETXATTR", NODE0, struct.pack("<II", 3, 0) + name("user.a") + b"xyz") +
          req("GETXATTR", NODE0, struct.pack("<II", 64, 0) + name("user.a")) +
          req("LISTXATTR", NODE0, struct.pack("<II", 64, 0)) +
          req("SETLK", NODE0, lk) +
          req("GETLK", NODE0, lk) +
          req("FALLOCATE", NODE0, struct.pack("<QQQII", FH0, 0, 8192, 0, 0)) +
          req("LSEEK", NODE0, struct.pack("<QQII", FH0, 0, 3, 0)) +
          req("COPY_FILE_RANGE", NODE0, struct.pack("<QQQQQQQ", FH0, 0, NODE0, FH0, 4096, 100, 0)) +
          req("SETUPMAPPING", NODE0, struct.pack("<QQQQQ", FH0, 0, 2 << 20, 3, 0)) +
          req("REMOVEMAPPING", ROOT, struct.pack("<I", 1) + struct.pack("<QQ", 0, 2 << 20)) +
          req("STATFS", ROOT) +
          req("ACCESS", NODE0, struct.pack("<II", 4, 0)) +
          req("REMOVEXATTR", NODE0, name("user.a")))
    # The client's own INIT (no automatic one), then a lookup split into 1-byte segments.
    init = struct.pack("<IIIII", 7, 31, 65536, 0xffffffff, 0) + bytes(44)
    write("fuse", "own-init-split", b"\1" + req("INIT", 0, init, ctl=0x90) +
          req("LOOKUP", ROOT, name("."), ctl=0xd2) + req("DESTROY", 0, ctl=0x30))


# ---- boot: u8 mode, then a bzImage or an ELF ---------------------------------------------

def elf(entry=0x200000, paddr=0x200000, data=b"\x90" * 64, memsz=0x2000):
    eh = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7),
                     2, 62, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 7, 120, paddr, paddr, len(data), memsz, 0x1000)
    return eh + ph + data


def bzimage(payload=b"", pref=0x200000, init_size=0x200000):
    setup_sects = 1
    img = bytearray((setup_sects + 1) * 512)
    pm = payload + bytes(64)
    pm += bytes(-len(pm) % 16)
    hdr = {
        0x1f1: struct.pack("<B", setup_sects), 0x1f4: struct.pack("<I", len(pm) // 16),
        0x1fe: struct.pack("<H", 0xAA55), 0x202: b"HdrS", 0x206: struct.pack("<H", 0x020f),
        0x211: struct.pack("<B", 1), 0x22c: struct.pack("<I", 0x7fffffff),
        0x236: struct.pack("<H", 1), 0x238: struct.pack("<I", 2048),
        0x248: struct.pack("<II", 0, len(payload)),
        0x258: struct.pack("<QI", pref, init_size),
    }
    for off, b in hdr.items():
        img[off:off + len(b)] = b
    return bytes(img) + pm


def boot():
    write("boot", "elf", b"\1" + elf())
    xz = lzma.compress(elf(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                       filters=[{"id": lzma.FILTER_LZMA2, "preset": 0, "dict_size": 1 << 16}])
    write("boot", "bzimage-xz", b"\x20" + bzimage(xz + struct.pack("<I", len(elf()))))
    write("boot", "bzimage-plain", b"\0" + bzimage(b"\x55" * 200))


# ---- pci: operations (u8 opcode, arguments) ----------------------------------------------

def pci():
    ops = b""
    # Size BAR 0 of device 1 (slot 1), then program it, enable decode, then touch the BAR.
    ops += struct.pack("<BBB", 7, 0x00, 1)                        # BAR0 <- ~0 and decode on
    ops += struct.pack("<BBBI", 7, 0x00, 0, 0xC0100000)           # BAR0 low
    ops += struct.pack("<BBBI", 7, 0x01, 0, 0x0)                  # BAR1 = high half
    ops += struct.pack("<BBhBQ", 0x83, 0x00, 0x100, 2, 1)         # write BAR 0 +0x100
    # MSI-X: enable through config space at the capability (0x48 for device 1), unmask a vector.
    ops += struct.pack("<BBBHBQ", 0x86, 9, 2, 0x4a, 2, 0x8000)
    ops += struct.pack("<BBhBQ", 0x83, 0x00, 0x2000, 3, 0xfee00000)  # entry 0 address
    ops += struct.pack("<BBhBQ", 0x83, 0x00, 0x200c, 2, 0)        # entry 0 unmasked
    ops += struct.pack("<BB", 0x05, 0x10)                          # notify vector 0
    ops += struct.pack("<BBhBQ", 0x03, 0x00, 0x3000, 3, 0)        # read the PBA
    write("pci", "bar-msix", ops)
    mech1 = struct.pack("<BHBBI", 0x01, 1 << 11 | 0x04, 0, 1, 0) + \
        struct.pack("<BHBBI", 0x81, 1 << 11 | 0x04, 0, 1, 6) + \
        struct.pack("<BIBQ", 0x02, (2 << 15) | 0x10, 2, 0) + \
        struct.pack("<BBBI", 0x80, 4, 2, 0x80000800) + \
        struct.pack("<BB", 0x85, 0x03)
    write("pci", "mech1-ecam-intx", mech1)


# ---- virtio_transport: u8 transport, then operations --------------------------------------

def vt_mmio():
    ops = b""
    w = lambda off, v: struct.pack("<BHQ", 0x80, off, v)          # 4-byte register write
    r = lambda off: struct.pack("<BHQ", 0x81, off, 0)
    ops += r(0x000) + r(0x010)
    for s in (1, 3):
        ops += w(0x070, s)
    ops += w(0x024, 1) + w(0x020, 1) + w(0x024, 0) + w(0x020, 0x30000000)   # VERSION_1 | EVENT_IDX | INDIRECT
    ops += w(0x070, 11)
    for q, base in ((0, 0x1000), (1, 0x2000)):
        ops += w(0x030, q) + w(0x038, 8) + w(0x080, base) + w(0x090, base + 0x100) + \
            w(0x0a0, base + 0x200) + w(0x044, 1)
    ops += w(0x070, 15)
    # A chain on queue 0: desc 0 -> 0x3000 (16 bytes, readable), published.
    d = struct.pack("<QIHH", 0x3000, 16, 0, 0)
    ops += struct.pack("<BHB", 4, 0x1000, len(d)) + d
    ops += struct.pack("<BHB", 4, 0x1100, 6) + struct.pack("<HHH", 0, 1, 0)
    ops += struct.pack("<BB", 5, 0) + r(0x060) + w(0x064, 1) + struct.pack("<BH", 7, 0)
    ops += struct.pack("<BHQ", 0x41, 0x104, 0) + struct.pack("<BHQ", 0x40, 0x100, 0xee)
    return b"\0" + ops


def vt_pci():
    ops = b""
    w4 = lambda off, v: struct.pack("<BHQ", 0x80, off, v)
    w2 = lambda off, v: struct.pack("<BHQ", 0x40, off, v)
    w1 = lambda off, v: struct.pack("<BHQ", 0x00, off, v)
    ops += w1(0x14, 1) + w1(0x14, 3)
    ops += w4(0x08, 0) + w4(0x0c, 0x30000000) + w4(0x08, 1) + w4(0x0c, 1)
    ops += w1(0x14, 11)
    ops += w2(0x10, 2)                                              # config vector
    for q, base in ((0, 0x1000), (1, 0x2000)):
        ops += w2(0x16, q) + w2(0x18, 8) + w2(0x1a, q) + w4(0x20, base) + w4(0x28, base + 0x100) + \
            w4(0x30, base + 0x200) + w2(0x1c, 1)
    ops += w1(0x14, 15)
    # MSI-X on: message control at 0x40 + 0x10 * 4 caps... found by the fuzzer; ISR read.
    ops += struct.pack("<BHQ", 0x01, 0x1000, 0)
    d = struct.pack("<QIHH", 0x3000, 16, 2, 0)
    ops += struct.pack("<BHB", 4, 0x1000, len(d)) + d
    ops += struct.pack("<BHB", 4, 0x1100, 6) + struct.pack("<HHH", 0, 1, 0)
    ops += struct.pack("<BB", 5, 0) + struct.pack("<BH", 7, 0)
    ops += struct.pack("<BHQ", 0x81, 0x2000, 0)
    return b"\1" + ops


# ---- console: u8 setup, then operations ---------------------------------------------------

def console():
    ctl = lambda pid, ev, val: struct.pack("<BB", 0, 8) + struct.pack("<IHH", pid, ev, val)
    ops = struct.pack("<BBBBB", 0xc1, 40, 40, 40, 40)      # four control receive buffers
    ops += ctl(0xffffffff, 0, 1)                           # DEVICE_READY
    for p in range(4):
        ops += ctl(p, 3, 1)                                # PORT_READY
    ops += ctl(1, 6, 1)                                    # the guest opens stdin
    ops += struct.pack("<BBBBB", 0xc4, 32, 32, 32, 32)   # stdin receive buffers
    ops += struct.pack("<BB", 3, 4) + b"hello"             # host stdin data
    ops += struct.pack("<BBB", 5, 2, 3) + b"out"           # guest stdout
    ops += struct.pack("<B", 0x0b)                         # host stdin ends
    write("console", "handshake", b"\x0d" + ops)
    write("console", "no-multiport", b"\x02" + ctl(0, 0, 1) + struct.pack("<BBB", 5, 0, 2) + b"hi")


if __name__ == "__main__":
    virtq()
    fuse()
    boot()
    pci()
    write("virtio_transport", "mmio-bringup", vt_mmio())
    write("virtio_transport", "pci-bringup", vt_pci())
    console()
