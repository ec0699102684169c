#!/usr/bin/env python3
"""The peer scripts/gpu-bench compares dfa with: llama.cpp's own llama-mtmd-cli,
run once per image with the detection question and one output token, as a
user scripting llama.cpp would (the vendored llama.cpp has no server sources).
Each run loads the model again (from the page cache after the first), which is
part of what that user pays. Prints JSON: images/s and per-image seconds."""
import argparse, json, pathlib, struct, subprocess, sys, time, zlib


def png(path, i, side=256):
    # The same kind of pattern dfa's bench uses, written with the stdlib only.
    rows = b"".join(
        b"\x00" + bytes(v for x in range(side)
                        for v in ((x ^ (i * 40)) & 255, (y + i * 13) & 255, (((x * y) >> 6) ^ i) & 255))
        for y in range(side))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cli", required=True)
    p.add_argument("--model", required=True, help="folder with model.gguf and mmproj.gguf")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--ngl", default="999")
    p.add_argument("--work", default="/tmp/gpu-bench-images")
    a = p.parse_args()
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    model = pathlib.Path(a.model)
    seconds = []
    for i in range(a.images + 1):
        img = work / f"{i}.png"
        png(img, i)
        cmd = [a.cli, "-m", str(model / "model.gguf"), "--mmproj", str(model / "mmproj.gguf"),
               "--image", str(img), "-p", "Has this face been forged?", "-n", "1",
               "--temp", "0", "-ngl", str(a.ngl), "-c", "4096", "--chat-template", "vicuna"]
        started = time.monotonic()
        run = subprocess.run(cmd, capture_output=True, text=True)
        took = time.monotonic() - started
        if run.returncode != 0:
            sys.stderr.write(run.stderr[-3000:])
            sys.exit(f"llama-mtmd-cli failed on image {i} (exit {run.returncode})")
        # The first run also reads the files from disk: left out, as dfa's
        # model load is.
        if i > 0:
            seconds.append(took)
        print(f"image {i}: {took:.3f} s", file=sys.stderr)
    print(json.dumps({
        "peer": "llama-mtmd-cli, one process per image (-n 1, -ngl %s)" % a.ngl,
        "images": len(seconds),
        "images_per_s": len(seconds) / sum(seconds),
        "seconds": seconds,
    }, indent=2))


if __name__ == "__main__":
    main()
