"""Does a learned outline look like real outlines? The DreamBooth paper's three measures, with this project's own nets,
plus a pixel check:

- subject fidelity: FID on the evaluator's features between 200 generated pictures and 200 real outline pictures with
  the same captions (same digits and colours, font, size and place drawn afresh), seen through the VAE's round trip
  as every generated picture is;
- prompt fidelity: the evaluator reads the asked digit;
- leakage: the outline judge's hit rate on the 100 `hit_prompts` *without* the word;
- hollowness: the share of background inside each glyph's outer contour (`sdfound.concepts.hollowness`).

Rows: real pictures (the floor and the filled-digit contrast), the tiny model without the word, and each model named
on the command line. Prints a table and writes it to bench/results/subject_fidelity.md.

    python bench/subject_fidelity.py                                  # the references and the shipped <outline>
    python bench/subject_fidelity.py --add 'mine=/path/learned_embeds.safetensors+/path/lora' --guidance 7.5,3
"""
import argparse, dataclasses, json, time
from pathlib import Path
import torch
from sdfound.concepts import (CONCEPTS, concepts_dir, hollowness, same_captions, render_scenes, through_vae, judge_says,
                              load_concept_judge, hit_prompts)
from sdfound.core import quiet_libraries, pil_to_tensor, tensor_to_pil, image_grid
from sdfound.data import DigitScenes, TRAIN_FONTS
from sdfound.evaluator import load_classifier, classify, fid, generate_tensors
from sdfound.pipelines import load_pipeline

OUTLINE, WORD, N = CONCEPTS['outline'], '<outline>', 200
SHIPPED = f"{concepts_dir() / 'outline' / 'learned_embeds.safetensors'}+{concepts_dir() / 'outline' / 'lora'}"

def asked_scenes(n: int = N) -> list:
    "The captions every row is drawn for: outline scenes of the training fonts (seed 500)."
    ds = DigitScenes(n, seed=500, fonts=TRAIN_FONTS)
    return [dataclasses.replace(ds.scene(i), style='outline') for i in range(n)]

def real_pictures(scenes, seed: int, style: str = 'outline', vae=None) -> torch.Tensor:
    "Real pictures for `scenes`' captions in `style`, everything else drawn afresh from `seed`; through `vae` if given."
    x = pil_to_tensor(render_scenes(same_captions([dataclasses.replace(s, style=style) for s in scenes], seed), seed))
    return x if vae is None else through_vae(vae, x)

def scores(x: torch.Tensor, scenes, reference: torch.Tensor, clf, judge) -> dict:
    "The measures that need only the pictures: FID to `reference`, hollowness, asked digit read, judge's reading."
    digits = torch.tensor([s.digit for s in scenes])
    return dict(fid=fid(clf, reference, x), hollow=hollowness(x).mean().item(),
                digit=(classify(clf, x)['digit'].cpu() == digits).float().mean().item(),
                judge=judge_says(judge, x).float().mean().item())

def model(spec: str):
    "The tiny pipeline with a learned word file and/or a LoRA folder: 'word.safetensors+lora_dir' (either may be '')."
    pipe = load_pipeline('tiny', dtype=torch.float32, scheduler='ddim')
    pipe.set_progress_bar_config(disable=True)
    word, _, lora = spec.partition('+')
    if word: pipe.load_textual_inversion(word)
    if lora: pipe.load_lora_weights(lora)
    return pipe

def generated_row(name, spec, scenes, ref, clf, judge, guidance, word=WORD):
    pipe = model(spec)
    prompts = [OUTLINE.caption(s, word) for s in scenes]
    x = generate_tensors(pipe, prompts, guidance=guidance, steps=30, seed=5000, batch_size=100)
    without = generate_tensors(pipe, hit_prompts(OUTLINE), guidance=guidance, steps=30, seed=0, batch_size=100)
    image_grid(tensor_to_pil(x[:20]), cols=10).save(f'bench/results/subject_fidelity_{name}_g{guidance:g}.png')
    return dict(scores(x, scenes, ref, clf, judge), leak=judge_says(judge, without).float().mean().item())

def main(a):
    quiet_libraries()
    t0, clf, judge, scenes = time.time(), load_classifier(), load_concept_judge('outline'), asked_scenes()
    vae = model('').vae
    ref = real_pictures(scenes, 600, vae=vae)
    real = {'real outlines through the VAE (the floor)': real_pictures(scenes, 700, vae=vae),
            'real outlines as rendered': real_pictures(scenes, 701),
            'real filled digits through the VAE': real_pictures(scenes, 702, 'filled', vae)}
    rows = [dict(name=name, **scores(x, scenes, ref, clf, judge)) for name, x in real.items()]
    models = [('tiny, no word', '', None), ('word alone', SHIPPED.split('+')[0] + '+', WORD),
              ('word + LoRA', SHIPPED, WORD)]
    models += [(n, s, WORD) for n, _, s in (x.partition('=') for x in a.add)]
    for g in a.guidance:
        for name, spec, word in models:
            if word is None:  # the tiny model has no word: it is asked the plain captions
                r = generated_row('tiny', '', scenes, ref, clf, judge, g, word='')
            else: r = generated_row(name.replace(' ', '_').replace('+', 'and'), spec, scenes, ref, clf, judge, g, word)
            rows.append(dict(name=f'{name}, guidance {g:g}', **r))
            print(rows[-1], flush=True)
    table = make_table(rows)
    print(table, f"\n\n{(time.time() - t0) / 60:.1f} min, torch threads {torch.get_num_threads()}")
    if a.write:
        Path(a.write).write_text(HEADER + table + '\n')
        Path(a.write).with_suffix('.json').write_text(json.dumps(rows, indent=1))

HEADER = """# Subject fidelity: does the learned outline look like real outlines?

`python bench/subject_fidelity.py` (see its docstring for the measures). 200 captions of `DigitScenes(200, seed=500,
fonts=TRAIN_FONTS)` in outline style; generated with DDIM 30 steps, picture i seeded 5000 + i; the reference is 200
real outline pictures with the same captions (everything else drawn afresh), through the tiny VAE. Leakage: the outline
judge on the 100 `hit_prompts` without the word.

"""

def make_table(rows) -> str:
    pct = lambda v: '—' if v is None else f'{100 * v:.1f}%'
    out = ['| pictures | FID to real outlines | hollowness | asked digit read | outline judge '
           '| leakage without the word |',
           '|---|---:|---:|---:|---:|---:|']
    out += [f"| {r['name']} | {r['fid']:.1f} | {r['hollow']:.3f} | {pct(r['digit'])} | {pct(r['judge'])} "
            f"| {pct(r.get('leak'))} |"
            for r in rows]
    return '\n'.join(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--add', nargs='*', default=[], help="more models, as name=word.safetensors+lora_folder")
    p.add_argument('--guidance', default=[7.5], type=lambda s: [float(g) for g in s.split(',')])
    p.add_argument('--write', default='bench/results/subject_fidelity.md', help="markdown file ('' for none)")
    main(p.parse_args())
