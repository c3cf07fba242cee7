"""Seconds per training step of the tiny model's UNet with its text encoder under `fit`, on one process and on two
(`torchrun`, gloo on the CPU), and the collectives each step makes to synchronise the processes.

    python bench/ddp_step.py                                                   # one process
    ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 bench/ddp_step.py   # two
    python bench/ddp_step.py --table   # both, one after the other, as a markdown table

The recipe's UNet (64, 128, 128) and text encoder, random latents and captions, a global batch of 32 (each of two
processes takes 16), 3 warm-up and 10 timed steps; the collectives are counted by PyTorch's profiler (gloo's
events) over the whole run (14 steps, set-up included) and divided by its steps."""
import json, os, subprocess, sys, time
import torch

def measure(warmup: int = 3, timed: int = 10, batch: int = 32) -> dict:
    from accelerate import Accelerator
    from torch.profiler import profile, ProfilerActivity
    from sdfound import train
    from sdfound.ddpm import denoiser_loss
    from sdfound.schedulers import sd_scheduler
    from sdfound.tiny import tiny_unet
    state = Accelerator()  # joins torchrun's processes (a `PartialState` made first would see one process)
    torch.manual_seed(0)
    models = torch.nn.ModuleDict(dict(unet=tiny_unet(), text_encoder=_text_encoder()))
    train.plain_attention(models)
    sched = sd_scheduler('ddpm')
    g = torch.Generator().manual_seed(0)
    z, ids = torch.randn(batch, 4, 8, 8, generator=g), torch.randint(0, 400, (batch, 32), generator=g)
    times = []
    def clock(step, model):  # before each step: the time the previous one took
        times.append(time.perf_counter())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train.fit(models, lambda m, b: denoiser_loss(m, b, sched), lambda s: dict(latents=z, input_ids=ids),
                  warmup + timed + 1, warmup=1, progress=False, before_step=clock)
    seconds = (times[-1] - times[warmup]) / timed
    # gloo records one event per collective it runs, whoever asked for it (Python or DDP's reducer)
    names = [e.name for e in prof.events() if e.name.startswith('gloo:')]
    steps = warmup + timed + 1
    return dict(processes=state.num_processes, seconds=seconds, all_reduce=names.count('gloo:all_reduce') / steps,
                collectives=len(names) / steps, kinds={n: names.count(n) for n in sorted(set(names))})

def _text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel
    return CLIPTextModel(CLIPTextConfig(vocab_size=400, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=32))

def table() -> None:
    env = dict(os.environ, ACCELERATE_USE_CPU='true', OMP_NUM_THREADS='1')
    rows = []
    for n in (1, 2):
        launch = [sys.executable] if n == 1 else [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2']
        out = subprocess.run(launch + [__file__, '--json'], env=env, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print('| processes | s per step | all-reduces per step | collectives per step | all collectives of the run |')
    print('|---:|---:|---:|---:|---|')
    for r in rows:
        kinds = ', '.join(f'{k[5:]} {v}' for k, v in r['kinds'].items())
        print(f"| {r['processes']} | {r['seconds']:.3f} | {r['all_reduce']:.1f} | {r['collectives']:.1f} | {kinds} |")

if __name__ == '__main__':
    if '--table' in sys.argv: table()
    else:
        r = measure()
        from accelerate import PartialState
        if PartialState().is_main_process: print(json.dumps(r))
        from sdfound.train import end_processes
        end_processes()
