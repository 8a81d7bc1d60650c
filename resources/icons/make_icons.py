#!/usr/bin/env python3
"""Draws the console's 32x32 navigation icons as PNG (pure Python: no imaging library needed).

Run from this folder: python3 make_icons.py. The PNGs are committed; this script is how they
were made, so they can be changed and redrawn.
"""
import math
import struct
import zlib

N = 32


def png(path, pixels):
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


class Canvas:
    def __init__(self):
        self.p = [[(0, 0, 0, 0) for _ in range(N)] for _ in range(N)]

    def put(self, x, y, c):
        if 0 <= x < N and 0 <= y < N:
            self.p[y][x] = c

    def rect(self, x0, y0, x1, y1, c):
        for y in range(y0, y1):
            for x in range(x0, x1):
                self.put(x, y, c)

    def disc(self, cx, cy, r, c, inner=0.0):
        for y in range(N):
            for x in range(N):
                d = math.hypot(x + 0.5 - cx, y + 0.5 - cy)
                if inner <= d <= r:
                    self.put(x, y, c)

    def line(self, x0, y0, x1, y1, w, c):
        for y in range(N):
            for x in range(N):
                px, py = x + 0.5, y + 0.5
                dx, dy = x1 - x0, y1 - y0
                t = max(0, min(1, ((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy)))
                if math.hypot(px - (x0 + t * dx), py - (y0 + t * dy)) <= w / 2:
                    self.put(x, y, c)


BLUE = (0x2f, 0x6f, 0xd0, 255)
GREEN = (0x2e, 0xa0, 0x43, 255)
ORANGE = (0xe0, 0x8a, 0x20, 255)
RED = (0xd0, 0x40, 0x40, 255)
GREY = (0x70, 0x78, 0x80, 255)
PURPLE = (0x80, 0x50, 0xc0, 255)

icons = {}

c = Canvas()  # fleet: a 2x2 grid of machines
for x0, y0 in ((3, 3), (17, 3), (3, 17), (17, 17)):
    c.rect(x0, y0, x0 + 12, y0 + 12, BLUE)
    c.rect(x0 + 2, y0 + 8, x0 + 10, y0 + 10, (255, 255, 255, 255))
icons["fleet"] = c

c = Canvas()  # deployments: rising bars
for i, h in enumerate((10, 16, 22, 28)):
    c.rect(2 + i * 8, 30 - h, 8 + i * 8, 30, GREEN)
icons["deployments"] = c

c = Canvas()  # validate: a check mark in a ring
c.disc(16, 16, 15, GREEN, inner=12.5)
c.line(9, 16.5, 14, 22, 3.5, GREEN)
c.line(14, 22, 23.5, 10, 3.5, GREEN)
icons["validate"] = c

c = Canvas()  # cost: a coin
c.disc(16, 16, 14, ORANGE)
c.disc(16, 16, 10, (0xf5, 0xc0, 0x50, 255))
c.rect(14, 9, 18, 23, ORANGE)
icons["cost"] = c

c = Canvas()  # compliance: a shield
for y in range(3, 30):
    half = 12 if y < 16 else max(0, int(12 - (y - 16) * 0.9))
    c.rect(16 - half, y, 16 + half, y + 1, PURPLE)
c.line(10, 16, 14, 20, 3, (255, 255, 255, 255))
c.line(14, 20, 22, 11, 3, (255, 255, 255, 255))
icons["compliance"] = c

c = Canvas()  # audit: a chained list
for i in range(4):
    c.disc(6, 6 + i * 7, 2.5, GREY)
    c.rect(11, 5 + i * 7, 29, 8 + i * 7, GREY)
c.line(6, 6, 6, 27, 1.5, GREY)
icons["audit"] = c

c = Canvas()  # targets: a crosshair
c.disc(16, 16, 14, RED, inner=11.5)
c.disc(16, 16, 4, RED)
c.rect(15, 1, 17, 9, RED)
c.rect(15, 23, 17, 31, RED)
c.rect(1, 15, 9, 17, RED)
c.rect(23, 15, 31, 17, RED)
icons["targets"] = c

c = Canvas()  # the application: a sextant's arc and arms
c.disc(16, 8, 22, BLUE, inner=19)
for y in range(N):
    for x in range(N):
        if y < 14:
            c.p[y][x] = (0, 0, 0, 0)
c.line(16, 4, 6, 28, 2.5, BLUE)
c.line(16, 4, 26, 28, 2.5, BLUE)
c.disc(16, 4, 3, ORANGE)
icons["sextant"] = c

for name, canvas in icons.items():
    png(f"{name}.png", canvas.p)
