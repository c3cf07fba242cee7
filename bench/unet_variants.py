"""Which UNet recipe follows prompts best? Train variants of the UNet stage on one base run's tokenizer/CLIP, VAE and
evaluator, and score each on the quality prompts (240, DDIM 30) at guidance 7.5, 3 and 1.

    python bench/unet_variants.py --base runs/x --work runs/variants \\
        A='{"unet_batch": 256, "unet_steps": 1400}' C='{"unet_batch": 256, "unet_steps": 1400, "train_text_encoder": false}'
Each NAME=JSON overrides `TinyRecipe` fields; variants run one after another (on a GPU, start several processes).
Prints one markdown row per variant; the measured table is in bench/results/unet_variants_h100.md."""
import argparse, json, shutil, time
from pathlib import Path
import torch
from sdfound.core import write_atomic
from sdfound.tiny import TinyRecipe, run_record, train_tiny
from sdfound.evaluator import load_classifier, quality_prompts, prompt_adherence
from sdfound.pipelines import load_pipeline

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--base', required=True, help='a finished run folder: its tiny-clip, vae, evaluator and vae-decoder are reused')
    ap.add_argument('--work', required=True, help='folder for the variants (resumes if present)')
    ap.add_argument('variants', nargs='+', help='NAME=JSON recipe overrides')
    a = ap.parse_args()
    base, work = Path(a.base), Path(a.work)
    for part in ('tiny-clip', 'vae', 'evaluator', 'vae-decoder'):
        if not (base / part / '.done').exists(): raise SystemExit(f"{base / part} is not a finished stage")
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    judge, prompts = load_classifier(base / 'evaluator'), quality_prompts()
    print(f"| variant | recipe changes | train s | g 7.5 digit / fg / both | g 3 digit / fg / both | g 1 digit / fg / both |\n|---|---|---:|---|---|---|")
    for spec in a.variants:
        name, over = spec.split('=', 1)
        over = json.loads(over)
        run = work / name
        recipe = TinyRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})
        for part in ('tiny-clip', 'vae', 'evaluator', 'vae-decoder'):
            if not (run / part).exists(): shutil.copytree(base / part, run / part)
        # the variant's own run, begun from the base run's parts: its record is the variant's recipe
        if not (run / 'run.json').exists(): write_atomic(run / 'run.json', json.dumps(run_record(recipe), indent=1))
        t0 = time.time()
        train_tiny(run, recipe, progress=False, log=lambda s: None)
        secs = time.time() - t0
        pipe = load_pipeline(str(run / 'tiny'), device=device, dtype=torch.float32, scheduler='ddim')
        pipe.set_progress_bar_config(disable=True)
        cells = []
        for g in (7.5, 3.0, 1.0):
            q = prompt_adherence(pipe, judge, prompts, guidance=g, steps=30)
            cells.append(f"{q['digit']:.1%} / {q['fg']:.1%} / {q['digit+fg']:.1%}")
        print(f"| {name} | `{json.dumps(over)}` | {secs:.0f} | " + ' | '.join(cells) + ' |', flush=True)

if __name__ == '__main__': main()
