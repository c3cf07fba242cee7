"""Throughput of the synthetic datasets on this machine: `python bench/data_speed.py`."""
import time, torch
from sdfound.data import DigitScenes, GrayDigits

def rate(ds, n):
    ds[0]  # warm font caches
    t0 = time.perf_counter()
    for i in range(n): ds[i]
    return n / (time.perf_counter() - t0)

def loader_rate(ds, n, workers):
    dl = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers)
    t0 = time.perf_counter(); seen = 0
    for b in dl:
        seen += len(b['image'])
        if seen >= n: break
    return seen / (time.perf_counter() - t0)

if __name__ == '__main__':
    n = 4000
    rows = [('DigitScenes 64×64 RGB, one process', rate(DigitScenes(n), n)),
            ('DigitScenes 64×64 RGB, DataLoader 2 workers', loader_rate(DigitScenes(n), n, 2)),
            ('GrayDigits 28×28, one process', rate(GrayDigits(n), n))]
    print(f"| dataset | images/s |\n|---|---:|")
    for name, r in rows: print(f"| {name} | {r:,.0f} |")
