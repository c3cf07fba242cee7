"""Textual inversion and Dreambooth on the tiny model, measured: for each concept, its judge's accuracy on held-out
renders; for each run, the concept hit rate with and without the word (100 pictures, DDIM 30 steps, guidance 7.5),
digit / fg adherence on the 240 ordinary quality prompts before and after, minutes and steps. Prints one table and
writes it to bench/results/personalize.md.

    python bench/personalize.py                 # every run in RUNS
    python bench/personalize.py --ship          # also save the judges, <halloween> and the outline LoRA into sdfound/models/concepts
    python bench/personalize.py --runs ti-halloween,db-outline-prior
    python bench/personalize.py --runs db-outline-word-prior --reuse-judges   # the shipped judges, not new ones
"""
import argparse, copy, json, time
from pathlib import Path
import numpy as np, torch
from sdfound.core import quiet_libraries, tensor_to_pil, image_grid
from sdfound.concepts import (CONCEPTS, concepts_dir, train_concept_judge, judge_accuracy, save_concept_judge, hit_prompts,
                              hit_rate, judge_says, concept_pictures, load_concept_judge)
from sdfound.data import DigitScenes, parse_caption
from sdfound.evaluator import load_classifier, classify, adherence, quality_prompts, generate_tensors
from sdfound.pipelines import load_pipeline
from sdfound.personalize import train_textual_inversion, train_dreambooth, save_textual_inversion, save_dreambooth
from sdfound.data import TRAIN_FONTS

# what each run trains: the lesson's settings (8 pictures unless `pictures` says otherwise)
RUNS = {
    'ti-halloween': dict(method='textual inversion', concept='halloween', word='<halloween>', vectors=4, steps=400, lr=1e-2),
    'ti-small': dict(method='textual inversion', concept='small', word='<small>', vectors=4, steps=400, lr=1e-2),
    'ti-outline': dict(method='textual inversion', concept='outline', word='<outline>', vectors=4, steps=400, lr=1e-2),
    'db-outline': dict(method='Dreambooth, LoRA rank 8', concept='outline', word='jqz', steps=600, lr=1e-3, prior=0, pictures=32),
    'db-outline-prior': dict(method='Dreambooth, LoRA rank 8 + prior', concept='outline', word='jqz', steps=600, lr=1e-3, prior=64, pictures=32),
    # the word learned first by the `pivot` run (its 8 pictures are the first 8 of the 32), then a LoRA trained on top
    # of it: the word already points at the concept, so a short, gentle fine-tune is enough
    'db-outline-word': dict(method='Dreambooth on a learned word, LoRA rank 8', concept='outline', word='<outline>', steps=75, lr=3e-4, prior=0, pictures=32,
                            pivot='ti-outline'),
    'db-outline-word-prior': dict(method='Dreambooth on a learned word, LoRA rank 8 + prior', concept='outline', word='<outline>', steps=75, lr=3e-4, prior=64, pictures=32,
                                  pivot='ti-outline'),
}
SHIP = {'ti-halloween': 'halloween', 'db-outline-word-prior': 'outline'}
# a size is a finer thing to tell than a colour or a hollow stroke: its judge gets more pictures and steps
JUDGE_TRAINING = {'small': dict(n=8000, steps=1200)}

def ordinary_adherence(pipe, clf):
    prompts = quality_prompts()
    return adherence(classify(clf, generate_tensors(pipe, prompts, seed=0, batch_size=120)), [parse_caption(p) for p in prompts])

def prior_set(pipe, concept, n, seed=1000):
    "`n` pictures the model itself draws for ordinary captions: what Dreambooth should not forget."
    scenes = [DigitScenes(50_000, seed=seed, fonts=TRAIN_FONTS).scene(i) for i in range(n)]
    prompts = [concept.caption(s) for s in scenes]
    return tensor_to_pil(generate_tensors(pipe, prompts, seed=seed, batch_size=100)), prompts

def run(name, spec, base, judge, clf, before, ship_dir=None):
    c = CONCEPTS[spec['concept']]
    images, scenes = concept_pictures(c, n=spec.get('pictures', 8))
    pipe = copy.deepcopy(base)
    prompts = [c.caption(s, spec['word']) for s in scenes]
    t0 = time.time()
    if spec['method'].startswith('textual'):
        log = train_textual_inversion(pipe, images, prompts, token=spec['word'], vectors=spec['vectors'], steps=spec['steps'], lr=spec['lr'], progress=False)
    else:
        if 'pivot' in spec:
            v, n = RUNS[spec['pivot']], RUNS[spec['pivot']].get('pictures', 8)
            train_textual_inversion(pipe, images[:n], prompts[:n], token=spec['word'], vectors=v['vectors'], steps=v['steps'], lr=v['lr'], progress=False)
        kw = dict(zip(('prior_images', 'prior_prompts'), prior_set(base, c, spec['prior']))) if spec['prior'] else {}
        log = train_dreambooth(pipe, images, prompts, spec['word'], steps=spec['steps'], lr=spec['lr'], batch_size=8, lora_rank=8, progress=False, **kw)
    minutes = (time.time() - t0) / 60
    # the pictures hit_rate draws (the pipeline's scheduler is DDIM already), drawn once for both judges
    asked = hit_prompts(c, spec['word'])
    drawn = generate_tensors(pipe, asked, seed=0, batch_size=100)
    hit, without = judge_says(judge, drawn).float().mean().item(), hit_rate(pipe, judge, hit_prompts(c))
    # does the word leave the colours the prompt asks for alone? the evaluator reads the background (an outline's thin
    # strokes are too little to read the foreground by)
    bg_kept = adherence(classify(clf, drawn), [parse_caption(p.split(',')[0]) or {} for p in asked])['bg']
    after = ordinary_adherence(pipe, clf)
    x = generate_tensors(pipe, hit_prompts(c, spec['word'])[::5][:20], seed=0)
    image_grid(tensor_to_pil(x), cols=10).save(f'bench/results/personalize_{name}.png')
    if ship_dir is not None:
        if spec['method'].startswith('textual') or 'pivot' in spec: save_textual_inversion(pipe, spec['word'], ship_dir / 'learned_embeds.safetensors')
        if not spec['method'].startswith('textual'): save_dreambooth(pipe, ship_dir / 'lora')
    steps = spec['steps'] if 'pivot' not in spec else f"{RUNS[spec['pivot']]['steps']} + {spec['steps']}"
    return dict(run=name, method=spec['method'], concept=c.name, word=spec['word'], steps=steps, minutes=round(minutes, 2),
                bg_kept=bg_kept, loss_before=round(log['probe'][0], 4), loss_after=round(log['probe'][-1], 4), hit=hit, without=without,
                digit_before=before['digit'], digit_after=after['digit'], fg_before=before['fg'], fg_after=after['fg'],
                both_before=before['digit+fg'], both_after=after['digit+fg'])

def main(a):
    quiet_libraries()
    torch.manual_seed(0)
    base = load_pipeline('tiny', dtype=torch.float32, scheduler='ddim')
    base.set_progress_bar_config(disable=True)
    clf = load_classifier()
    runs = a.runs.split(',') if a.runs else list(RUNS)
    if a.quick:  # a check that everything runs: a few steps of each
        for r in RUNS: RUNS[r] = dict(RUNS[r], steps=2, prior=min(RUNS[r].get('prior', 0), 4))  # every run: a pivot is a run too
    t0 = time.time()
    before = ordinary_adherence(base, clf)
    judges, judge_rows = {}, []
    for name in sorted({RUNS[r]['concept'] for r in runs}):
        if a.reuse_judges:
            judges[name] = load_concept_judge(name)
            continue
        t = time.time()
        # the tiny model never draws outlines: what it draws for ordinary captions shows the judge more of "the rest"
        negatives = generate_tensors(base, [CONCEPTS[name].caption(DigitScenes(600, seed=77, fonts=TRAIN_FONTS).scene(i)) for i in range(600)], seed=77, batch_size=100) if name == 'outline' else None
        judges[name] = train_concept_judge(CONCEPTS[name], vae=base.vae, negatives=negatives, progress=False, **(dict(n=200, steps=5) if a.quick else JUDGE_TRAINING.get(name, {})))
        judge_rows.append((name, judge_accuracy(judges[name], CONCEPTS[name]), judge_accuracy(judges[name], CONCEPTS[name], vae=base.vae), (time.time() - t) / 60))
        print(judge_rows[-1], flush=True)
        if a.ship: save_concept_judge(judges[name], concepts_dir() / name / 'judge')
    rows = [run(r, RUNS[r], base, judges[RUNS[r]['concept']], clf, before, concepts_dir() / SHIP[r] if a.ship and r in SHIP else None) for r in runs]
    if a.write and Path(a.write).with_suffix('.json').exists():  # keep what this run did not measure again
        old = json.loads(Path(a.write).with_suffix('.json').read_text())
        judge_rows = [j for j in old['judges'] if not any(j[0] == r[0] for r in judge_rows)] + judge_rows
        rows = [r for r in old['runs'] if r['run'] not in runs] + rows
    judge_rows.sort(key=lambda j: j[0]); rows.sort(key=lambda r: list(RUNS).index(r['run']))
    table = make_table(judge_rows, rows)
    print(table)
    print(f"\ntotal {(time.time() - t0) / 60:.1f} min, torch threads {torch.get_num_threads()}")
    if a.write:
        Path(a.write).write_text(f"# Textual inversion and Dreambooth on the tiny model\n\n`python bench/personalize.py --ship` "
                                 f"(torch threads: {torch.get_num_threads()}; the `small` judge and run again with `--runs ti-small`)\n\n{table}\n")
        Path(a.write).with_suffix('.json').write_text(json.dumps(dict(judges=judge_rows, runs=rows), indent=1))

def make_table(judge_rows, rows):
    pct = lambda v: '—' if v != v else f'{100 * v:.0f}%'  # nan: nothing to read
    out = ["| concept | judge accuracy, 1,000 held-out renders | the same through the VAE | judge training minutes |", "|---|---:|---:|---:|"]
    out += [f"| {n} | {100 * r:.1f}% | {100 * v:.1f}% | {m:.1f} |" for n, r, v, m in judge_rows]
    out += ["", "| run | concept | word | hit rate with the word | without | background as asked, with the word | digit / fg / both on 240 ordinary prompts, before → after | fixed-noise loss on its pictures | steps | minutes |",
            "|---|---|---|---:|---:|---:|---|---|---:|---:|"]
    out += [f"| {r['method']} | {r['concept']} | `{r['word']}` | {pct(r['hit'])} | {pct(r['without'])} | {pct(r['bg_kept']) if 'bg_kept' in r else '—'} | "
            f"{pct(r['digit_before'])} / {pct(r['fg_before'])} / {pct(r['both_before'])} → {pct(r['digit_after'])} / {pct(r['fg_after'])} / {pct(r['both_after'])} | "
            f"{r['loss_before']} → {r['loss_after']} | {r['steps']} | {r['minutes']} |" for r in rows]
    return '\n'.join(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', default='', help=f"comma-separated, from: {', '.join(RUNS)} (default: all)")
    p.add_argument('--ship', action='store_true', help='save the judges and the shipped concepts into sdfound/models/concepts')
    p.add_argument('--reuse-judges', action='store_true', help='score with the shipped judges instead of training new ones')
    p.add_argument('--quick', action='store_true', help='a few steps of everything, to check it runs (writes nothing unless --write is given)')
    p.add_argument('--write', default='bench/results/personalize.md', help="markdown file for the table ('' for none)")
    a = p.parse_args()
    if a.quick and '--write' not in __import__('sys').argv: a.write = ''
    main(a)
