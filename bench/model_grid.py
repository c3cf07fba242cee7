"""The same prompts and seeds drawn by two (or more) tiny models, side by side: one row per prompt, one column
block per model.

    python bench/model_grid.py OUT.png runs/shipped-0.1.0/tiny sdfound/models/tiny
    python bench/model_grid.py OUT.png 0.4=runs/shipped-0.4.0/tiny 0.5=sdfound/models/tiny   # NAME=FOLDER: NAME on top
DDIM 30 steps, guidance 7.5, seeds 0–3, float32 on the CPU; pictures enlarged 2× (nearest) so a blotch or a blur shows."""
import sys
import torch
from PIL import Image, ImageDraw
from sdfound.core import image_grid, quiet_libraries
from sdfound.pipelines import load_pipeline, generators

PROMPTS = ["a red 7 on a blue background", "a white 3 on a black background", "a green 9 on a purple background",
           "a yellow 0 on a gray background", "the digit five in orange on a white background", "a blue 1 on a yellow background"]
SEEDS = 4

def draw(model) -> list[Image.Image]:
    pipe = load_pipeline(model, device='cpu', dtype=torch.float32, scheduler='ddim')
    pipe.set_progress_bar_config(disable=True)
    pics = []
    for p in PROMPTS:
        out = pipe([p] * SEEDS, num_inference_steps=30, guidance_scale=7.5, generator=generators(0, SEEDS)).images
        pics += [im.resize((128, 128), Image.NEAREST) for im in out]
    return pics

def main(out, models):
    quiet_libraries()
    names, folders = zip(*(m.split('=', 1) if '=' in m else (m, m) for m in models))
    columns = [draw(f) for f in folders]
    rows = [im for r in range(len(PROMPTS)) for col in columns for im in col[r * SEEDS:(r + 1) * SEEDS]]
    grid = image_grid(rows, rows=len(PROMPTS), cols=SEEDS * len(models))
    # a white gap between the models' blocks, and each model's name on top
    gap, head = 12, 20
    canvas = Image.new('RGB', (grid.width + gap * (len(models) - 1), grid.height + head), 'white')
    block = SEEDS * 128
    for k, m in enumerate(names):
        canvas.paste(grid.crop((k * block, 0, (k + 1) * block, grid.height)), (k * (block + gap), head))
        ImageDraw.Draw(canvas).text((k * (block + gap) + 4, 4), str(m), fill='black')
    canvas.save(out)
    print(f"wrote {out}: {len(PROMPTS)} prompts × seeds 0–{SEEDS - 1} × {len(models)} models")

if __name__ == '__main__':
    if len(sys.argv) < 3: sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
