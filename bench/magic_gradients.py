"""The magic function's gradient two ways: finite differences (one call per pixel) vs autograd (one backward pass).

    python bench/magic_gradients.py            # the shipped classifier, CPU
Prints a markdown table: ms per gradient of log P(digit) for one 28×28 picture, and how well the two agree."""
import argparse, statistics, time
import torch
import torch.nn.functional as F
from sdfound.magic import autograd_gradient, digit_logprob, fd_gradient, load_magic

def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--threads', type=int, default=1); ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    print(f"shipped magic-function classifier, one 28×28 noise picture, CPU, {a.threads} thread(s), median of {a.repeats}\n")
    print("| dtype | finite differences (785 calls) ms | autograd (1 fwd + 1 bwd) ms | speed-up | max abs difference | cosine similarity |")
    print("|---|---:|---:|---:|---:|---:|")
    for dtype, eps in ((torch.float32, 1e-3), (torch.float64, 1e-6)):
        model, xd = load_magic().to(dtype), x.to(dtype)
        f = lambda v: digit_logprob(model, v).sum()
        ms_fd, g_fd = timed(lambda: fd_gradient(f, xd, eps=eps), a.repeats)
        ms_ag, g_ag = timed(lambda: autograd_gradient(f, xd), a.repeats * 10)
        cos = F.cosine_similarity(g_fd.flatten().double(), g_ag.flatten().double(), dim=0).item()
        print(f"| {str(dtype).split('.')[-1]} (eps={eps:g}) | {ms_fd:.1f} | {ms_ag:.2f} | {ms_fd / ms_ag:.0f}× | {(g_fd - g_ag).abs().max():.2e} | {cos:.8f} |")

if __name__ == '__main__': main()
