#!/usr/bin/env python3
# Usage: loadtest/make-big-mp4.py OUT.mp4 SIZE_BYTES (e.g. 5368709120): see loadtest/README.md.
# A structurally valid MP4 of SIZE bytes: ftyp, a 64-bit mdat of zeros (sparse), then moov with
# one H.264 High 4.1 1920x1080 track of FRAMES frames at 25 fps. Only the boxes are real.
import struct, sys, os
path, size = sys.argv[1], int(sys.argv[2])
frames = 125000
def box(kind, payload): return struct.pack(">I", len(payload) + 8) + kind + payload
mdhd = b"\0" * 12 + struct.pack(">II", 12800, frames * 512) + b"\0" * 4
hdlr = b"\0" * 8 + b"vide" + b"\0" * 13
entry = b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16 + struct.pack(">HH", 1920, 1080) + b"\0" * 50 + box(b"avcC", bytes([1, 100, 0, 41, 0xFF]))
stsd = b"\0\0\0\0\0\0\0\x01" + box(b"avc1", entry)
stsz = b"\0" * 8 + struct.pack(">I", frames)
moov = box(b"moov", box(b"trak", box(b"mdia", box(b"mdhd", mdhd) + box(b"hdlr", hdlr) + box(b"minf", box(b"stbl", box(b"stsd", stsd) + box(b"stsz", stsz))))))
ftyp = box(b"ftyp", b"isom\0\0\x02\0isomavc1")
mdat_len = size - len(ftyp) - len(moov)
with open(path, "wb") as f:
    f.write(ftyp)
    f.write(struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", mdat_len))
    f.seek(len(ftyp) + mdat_len)
    f.write(moov)
print(os.path.getsize(path))
