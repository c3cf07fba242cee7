"""Quality against steps for every sampler, on the tiny model: classifier-feature FID and prompt adherence.

    python bench/samplers.py --n 500                  # everything, the 1000-step DDPM reference included
    python bench/samplers.py --n 500 --reference-only # only the 1000-step DDPM reference (run it beside the next one)
    python bench/samplers.py --n 500 --skip-reference # reads bench/results/samplers_reference_n500.json (waits for it)
    python bench/samplers.py --n 300 --rows distill   # the few-step adapter's rows and their controls, on the stored reference
All samplers share the same prompts (captions of held-out DigitScenes pictures) and the same seeds."""
import argparse, json, time
from pathlib import Path
import torch
from sdfound.data import DigitScenes, parse_caption
from sdfound.evaluator import load_classifier, classify, adherence, fid, generate_tensors
from sdfound.pipelines import load_pipeline, scheduler_classes, fast_adapter, use_fast_adapter
from sdfound.sampling import encode_text, guided_noise, descend, decode, momentum, adam, sgd, generate_by_hand, parts
from sdfound.schedulers import Euler
from sdfound.data import TRAIN_FONTS

RESULTS = Path(__file__).parent / 'results'

@torch.no_grad()
def optimiser_sample(pipe, prompts, update, steps, seed, guidance=7.5, karras=True):
    "Sampling as optimisation, batched: ε̂ is the gradient, σ_i − σ_{i+1} the learning rate, `update()` the optimiser."
    tok, te, unet = pipe.tokenizer, pipe.text_encoder, pipe.unet
    text = torch.cat([encode_text(tok, te, '').expand(len(prompts), -1, -1), torch.cat([encode_text(tok, te, p) for p in prompts])])
    euler = Euler.from_config(pipe.scheduler.config, use_karras_sigmas=karras); euler.set_timesteps(steps)
    σ, ts = euler.sigmas, euler.timesteps
    x = torch.cat([torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed + i)) for i in range(len(prompts))]) * euler.init_noise_sigma
    def gradient(x, i):
        x0 = x - σ[i] * guided_noise(unet, x / (σ[i] ** 2 + 1) ** 0.5, ts[i], text, guidance)
        return (x - x0) / σ[i]
    return decode(pipe.vae, descend(x, σ, gradient, update()), 'pt') * 2 - 1

def run(name, fn, prompts, batch):
    t0 = time.perf_counter()
    x = torch.cat([fn(prompts[i:i + batch], i) for i in range(0, len(prompts), batch)])
    return x, (time.perf_counter() - t0) / len(prompts) * 1000

def by_hand_vs_pipeline(pipe, prompts, steps=20, repeats=3):
    "Time the by-hand loop against `StableDiffusionPipeline` on the same weights, prompts, seeds and scheduler (DDIM)."
    pipe.scheduler = scheduler_classes()['ddim'].from_config(pipe.scheduler.config)
    by_hand = lambda p, i: generate_by_hand(p, **parts(pipe), num_inference_steps=steps, generator=torch.Generator().manual_seed(i))
    piped = lambda p, i: pipe(p, num_inference_steps=steps, generator=torch.Generator().manual_seed(i)).images[0]
    best = {}
    for _ in range(repeats):  # interleaved, best of `repeats`: both see the same machine load
        for name, fn in (('by hand', by_hand), ('pipeline', piped)):
            t0 = time.perf_counter()
            for i, p in enumerate(prompts): fn(p, i)
            best[name] = min(best.get(name, float('inf')), (time.perf_counter() - t0) / len(prompts) * 1000)
    print(f"\nby-hand loop {best['by hand']:.1f} ms/picture, pipeline {best['pipeline']:.1f} ms/picture "
          f"({steps} DDIM steps, batch 1, best of {repeats}): ratio by hand / pipeline = {best['by hand'] / best['pipeline']:.2f}")

def fingerprint(*models) -> str:
    "A short hash of the models' weights: which UNet, VAE and judge a stored result belongs to."
    import hashlib
    h = hashlib.sha256()
    for m in models:
        for k, v in sorted(m.state_dict().items()): h.update(k.encode()); h.update(v.float().numpy().tobytes())
    return h.hexdigest()[:12]

def distill_plan(pipe, model):
    "The few-step adapter's rows (LCMScheduler, no second UNet call) and their controls: (label, steps, fn) each."
    from diffusers import LCMScheduler
    fast = load_pipeline(model, device='cpu'); fast.set_progress_bar_config(disable=True)
    use_fast_adapter(fast, fast_adapter(model))
    base = pipe.scheduler.config
    def draw(p, scheduler, guidance, steps):
        def fn(ps, offset):
            p.scheduler = scheduler.from_config(base)
            return generate_tensors(p, ps, guidance=guidance, steps=steps, seed=offset, batch_size=len(ps))
        return fn
    ddim = scheduler_classes()['ddim']
    return [(f'LCM-LoRA adapter {s}', s, draw(fast, LCMScheduler, 1.0, s)) for s in (1, 2, 4, 8)] + [
        ('DDIM 4 (guidance 7.5)', 4, draw(pipe, ddim, 7.5, 4)),
        ('LCMScheduler 4, no adapter, guidance 1', 4, draw(pipe, LCMScheduler, 1.0, 4)),
        ('LCMScheduler 4, no adapter, guidance 7.5', 4, draw(pipe, LCMScheduler, 7.5, 4))]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=500); ap.add_argument('--batch', type=int, default=100)
    ap.add_argument('--skip-reference', action='store_true'); ap.add_argument('--reference-only', action='store_true')
    ap.add_argument('--model', default='tiny')
    ap.add_argument('--rows', choices=['all', 'distill'], default='all', help='distill: only the few-step rows')
    a = ap.parse_args()
    if a.rows == 'distill': a.skip_reference = True
    pipe = load_pipeline(a.model, device='cpu'); pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    clf = load_classifier()
    real = DigitScenes(a.n, seed=123_456, fonts=TRAIN_FONTS)
    prompts = [real[i]['caption'] for i in range(a.n)]
    real_x = torch.stack([real[i]['image'] for i in range(a.n)])
    wanted = [parse_caption(p) for p in prompts]

    def diffusers_sampler(kind, steps, **overrides):
        def fn(ps, offset):
            pipe.scheduler = scheduler_classes()[kind].from_config(base, **overrides)
            return generate_tensors(pipe, ps, guidance=7.5, steps=steps, seed=offset, batch_size=len(ps))
        return fn
    def optimiser(update, steps): return lambda ps, offset: optimiser_sample(pipe, ps, update, steps, offset)

    rows = []
    ref_file = RESULTS / f'samplers_reference_n{a.n}.json'
    model_id = fingerprint(pipe.unet, pipe.vae, clf)  # a stored reference counts only for the weights it was measured and judged with
    if not a.skip_reference:
        x, ms = run('DDPM 1000', diffusers_sampler('ddpm', 1000, timestep_spacing='trailing'), prompts, a.batch)  # every step, 999 … 0
        ref = dict(name='DDPM 1000 (reference)', model=model_id, steps=1000, fid=fid(clf, real_x, x), ms=ms, **adherence(classify(clf, x), wanted))
        RESULTS.mkdir(exist_ok=True); ref_file.write_text(json.dumps(ref)); rows.append(ref)
        print(f"reference stored in {ref_file}: {ref}")
    if a.reference_only: return
    if a.rows == 'distill':
        for label, steps, fn in distill_plan(pipe, a.model):
            x, ms = run(label, fn, prompts, a.batch)
            rows.append(dict(name=label, steps=steps, fid=fid(clf, real_x, x), ms=ms, **adherence(classify(clf, x), wanted)))
    plan = [] if a.rows == 'distill' else [('DDIM', 'ddim', s) for s in (10, 25, 50)] + [('Euler', 'euler', s) for s in (10, 20)] + \
           [('LMS', 'lms', s) for s in (10, 20)] + [('DPM-Solver++ 2M', 'dpm++', s) for s in (10, 20)]
    for label, kind, steps in plan:
        x, ms = run(label, diffusers_sampler(kind, steps), prompts, a.batch)
        rows.append(dict(name=f'{label} {steps}', steps=steps, fid=fid(clf, real_x, x), ms=ms, **adherence(classify(clf, x), wanted)))
    optimisers = [] if a.rows == 'distill' else [
        ('sdfound SGD (Karras σ)', sgd), ('sdfound momentum β=−0.5', lambda: momentum(-0.5)),
        ('sdfound Adam (whole-latent RMS)', lambda: adam(per_element=False))]
    for label, update in optimisers:
        for steps in (4, 10, 20):
            x, ms = run(label, optimiser(update, steps), prompts, a.batch)
            rows.append(dict(name=f'{label} {steps}', steps=steps, fid=fid(clf, real_x, x), ms=ms, **adherence(classify(clf, x), wanted)))
    if a.skip_reference:  # computed by another process (--reference-only); wait for it
        fresh = lambda: ref_file.exists() and json.loads(ref_file.read_text()).get('model') == model_id
        if not fresh(): print(f"waiting for {ref_file} of this model (run --reference-only beside this one)", flush=True)
        while not fresh(): time.sleep(30)
        rows.insert(0, json.loads(ref_file.read_text()))
    ref_fid = rows[0]['fid']
    print(f"{a.n} prompts (held-out DigitScenes captions), guidance 7.5, same seeds; FID on the evaluator's features; CPU threads={torch.get_num_threads()}\n")
    print("| sampler | FID | FID / reference | digit | fg | digit+fg | bg | ms/picture |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['fid']:.2f} | {r['fid'] / ref_fid:.2f} | {r['digit']:.1%} | {r['fg']:.1%} | {r['digit+fg']:.1%} | {r['bg']:.1%} | {r['ms']:.0f} |")
    if a.rows == 'distill': return
    by_hand_vs_pipeline(pipe, prompts[:20])
    ten = [r for r in rows[1:] if r['steps'] == 10]
    best = min(ten, key=lambda r: r['fid'])
    print(f"\nbest at 10 steps: {best['name']}, FID {best['fid']:.2f} = {best['fid'] / ref_fid - 1:+.0%} vs the 1000-step reference")

if __name__ == '__main__': main()
