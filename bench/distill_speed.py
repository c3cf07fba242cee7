"""How much faster the few-step adapter draws: the pipeline call alone, and `sdfound generate` end to end.

    python bench/distill_speed.py              # tables for bench/results/distill.md

The pipeline call is timed after loading, best of `--repeats`, the cases interleaved so that all see the same load;
the command line is timed as a learner runs it, a new interpreter each time."""
import argparse, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from sdfound.core import quiet_libraries
from sdfound.pipelines import load_pipeline, fast_adapter, use_fast_adapter

PROMPTS = ['a red 7 on a blue background', 'a green 3 on a white background', 'a yellow 0 on a purple background',
           'a white 8 on a black background', 'a blue 5 on an orange background', 'a black 1 on a yellow background',
           'a purple 4 on a green background', 'an orange 9 on a red background']

def pipelines(model: str) -> dict:
    "The teacher with its own scheduler, and the student: the adapter merged into the UNet, or kept beside it."
    teacher, merged, beside = (load_pipeline(model) for _ in range(3))
    use_fast_adapter(merged, fast_adapter(model))
    from diffusers import LCMScheduler
    beside.load_lora_weights(fast_adapter(model))
    beside.scheduler = LCMScheduler.from_config(beside.scheduler.config)
    for p in (teacher, merged, beside): p.set_progress_bar_config(disable=True)
    return dict(teacher=teacher, merged=merged, beside=beside)

def pipeline_times(pipes: dict, batch: int, repeats: int) -> dict:
    "ms per picture for each case at `batch` pictures per call."
    cases = {'20 steps, guidance 7.5 (DDIM)': (pipes['teacher'], 20, 7.5),
             '30 steps, guidance 7.5 (the CLI default)': (pipes['teacher'], 30, 7.5),
             '4 steps, adapter merged (`--fast`)': (pipes['merged'], 4, 1.0),
             '4 steps, adapter beside the UNet (plain `load_lora_weights`)': (pipes['beside'], 4, 1.0),
             '2 steps, adapter merged': (pipes['merged'], 2, 1.0),
             '1 step, adapter merged': (pipes['merged'], 1, 1.0)}
    best = {}
    for _ in range(repeats):
        for name, (pipe, steps, guidance) in cases.items():
            t0 = time.perf_counter()
            pipe(PROMPTS[:batch], num_inference_steps=steps, guidance_scale=guidance,
                 generator=torch.Generator().manual_seed(0))
            best[name] = min(best.get(name, float('inf')), (time.perf_counter() - t0) / batch * 1000)
    return best

def command_times(repeats: int) -> dict:
    "Seconds for a new interpreter to start, to import the CLI, and to run `sdfound generate` with and without --fast."
    out = Path(tempfile.mkdtemp()) / 'x.png'
    runs = {'python starts': [sys.executable, '-c', 'pass'],
            'python starts and imports sdfound.cli': [sys.executable, '-c', 'import sdfound.cli'],
            'python starts and imports torch': [sys.executable, '-c', 'import torch'],
            "python starts and imports diffusers' StableDiffusionPipeline (torch, transformers with it)":
                [sys.executable, '-c', 'from diffusers import StableDiffusionPipeline'],
            '`sdfound generate "a red 7 on a blue background"` (30 steps)': ['sdfound', 'generate', PROMPTS[0], '-o', out],
            '`sdfound generate "a red 7 on a blue background" --fast`': ['sdfound', 'generate', PROMPTS[0], '--fast',
                                                                         '-o', out]}
    best = {}
    for _ in range(repeats):
        for name, cmd in runs.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            best[name] = min(best.get(name, float('inf')), time.perf_counter() - t0)
    return best

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='tiny'); ap.add_argument('--repeats', type=int, default=5)
    a = ap.parse_args()
    quiet_libraries()
    pipes = pipelines(a.model)
    times = {b: pipeline_times(pipes, b, a.repeats) for b in (1, 8)}
    base = {b: times[b]['20 steps, guidance 7.5 (DDIM)'] for b in (1, 8)}
    print(f"model {a.model}, CPU threads {torch.get_num_threads()}, best of {a.repeats}; ms per picture, the pipeline "
          "call after loading\n")
    print("| case | batch 1 | × 20 steps | batch 8 | × 20 steps |\n|---|---:|---:|---:|---:|")
    for name in times[1]:
        print(f"| {name} | {times[1][name]:.1f} | {times[1][name] / base[1]:.2f} | {times[8][name]:.1f} | "
              f"{times[8][name] / base[8]:.2f} |")
    print(f"\nthe command line, a new interpreter each time, one picture (best of {a.repeats})\n")
    print("| run | seconds |\n|---|---:|")
    for name, s in command_times(a.repeats).items(): print(f"| {name} | {s:.2f} |")

if __name__ == '__main__': main()
