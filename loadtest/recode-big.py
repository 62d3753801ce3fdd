"""Re-encoding on retrieval at size: STOWs a synthetic Implicit VR LE object of FRAMES x 512 KiB
(default 2048: 1 GiB) streamed from a generator, then retrieves it over WADO-RS as stored and
re-encoded to Explicit VR LE; prints time, MiB/s and the server's peak RSS (VmHWM).

Usage: python loadtest/recode-big.py http://127.0.0.1:8080/dicom-web SERVER_PID [FRAMES]
"""
import sys, time, struct, requests, re
base, pid = sys.argv[1], int(sys.argv[2])
ROWS, COLS, FRAMES = 512, 512, int(sys.argv[3]) if len(sys.argv) > 3 else 2048
pixels = ROWS * COLS * 2 * FRAMES
def el(tag, val):  # implicit VR LE element
    g, e = tag
    if len(val) % 2: val += b"\0" if isinstance(val, bytes) else b" "
    return struct.pack("<HHI", g, e, len(val)) + val
def meta(ts):
    def ex(g, e, vr, v):
        if len(v) % 2: v += b"\0"
        return struct.pack("<HH", g, e) + vr + struct.pack("<H", len(v)) + v
    body = struct.pack("<HH", 2, 1) + b"OB\0\0" + struct.pack("<I", 2) + b"\0\1"
    body += ex(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7.3") + ex(2, 3, b"UI", b"1.2.3.4.5.6.7.8.1") + ex(2, 0x10, b"UI", ts)
    return b"\0" * 128 + b"DICM" + struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body)) + body
head = meta(b"1.2.840.10008.1.2")
head += el((8, 0x16), b"1.2.840.10008.5.1.4.1.1.7.3") + el((8, 0x18), b"1.2.3.4.5.6.7.8.1") + el((8, 0x60), b"OT")
head += el((0x10, 0x10), b"Big^Implicit") + el((0x10, 0x20), b"VNAE2E-BIGIMPL") + el((0x20, 0x0D), b"1.2.3.4.5.6.7.8") + el((0x20, 0x0E), b"1.2.3.4.5.6.7.8.9")
head += el((0x28, 2), struct.pack("<H", 1)) + el((0x28, 4), b"MONOCHROME2") + el((0x28, 8), str(FRAMES).encode())
head += el((0x28, 0x10), struct.pack("<H", ROWS)) + el((0x28, 0x11), struct.pack("<H", COLS)) + el((0x28, 0x100), struct.pack("<H", 16))
head += el((0x28, 0x101), struct.pack("<H", 16)) + el((0x28, 0x102), struct.pack("<H", 15)) + el((0x28, 0x103), struct.pack("<H", 0))
head += struct.pack("<HHI", 0x7FE0, 0x10, pixels)
chunk = bytes(range(256)) * 4096  # 1 MiB
def body():
    yield b"--B\r\nContent-Type: application/dicom\r\n\r\n" + head
    left = pixels
    while left:
        n = min(left, len(chunk)); yield chunk[:n]; left -= n
    yield b"\r\n--B--\r\n"
def hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1)) // 1024
t = time.time()
r = requests.post(base + "/studies", data=body(), headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=B', "Accept": "application/dicom+json"})
print("stow", r.status_code, f"{(len(head) + pixels) / 2**20:.0f} MiB in {time.time() - t:.1f} s; server VmHWM {hwm()} MB")
url = base + "/studies/1.2.3.4.5.6.7.8/series/1.2.3.4.5.6.7.8.9/instances/1.2.3.4.5.6.7.8.1"
for accept in ['multipart/related; type="application/dicom"; transfer-syntax=*', 'multipart/related; type="application/dicom"']:
    t = time.time(); n = 0
    with requests.get(url, headers={"Accept": accept}, stream=True) as r:
        for c in r.iter_content(1 << 20): n += len(c)
    dt = time.time() - t
    print(f"{accept.split(';')[-1].strip():>30}: {r.status_code} {n / 2**20:.0f} MiB in {dt:.1f} s = {n / 2**20 / dt:.0f} MiB/s; server VmHWM {hwm()} MB")
