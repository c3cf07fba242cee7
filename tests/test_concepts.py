"""Concepts to teach the tiny model, their judges, and what sdfound ships: the `<halloween>` textual inversion and the
outline Dreambooth LoRA on its learned `<outline>` word, loaded by plain diffusers, drawing their concept where the
prompt asks for it."""
import numpy as np, pytest, torch
from sdfound.concepts import (CONCEPTS, Concept, concept_scenes, render_scenes, ink, ConceptJudge, judge_says, judge_accuracy,
                              load_concept_judge, concepts_dir, hit_prompts, hit_rate, through_vae,
                              hollowness, same_captions)
from sdfound.core import pil_to_tensor
from sdfound.data import Scene, digit_mask
from sdfound.pipelines import load_pipeline

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::FutureWarning')

def test_concepts_make_members_and_captions():
    for c in CONCEPTS.values():
        scenes = concept_scenes(c, 400, seed=3)
        share = np.mean([c.member(s) for s in scenes])
        assert 0.45 < share < 0.75, (c.name, share)  # half made into the concept, a few more by chance
        made = c.make(Scene(7, 'red', 'blue'), np.random.default_rng(0))
        assert c.member(made) and not c.member(Scene(7, 'red', 'blue', size=0.7))
    h = CONCEPTS['halloween']
    assert h.caption(Scene(7, 'red', 'blue'), '<halloween>') == 'a 7 in <halloween> colours' and h.caption(Scene(7, 'red', 'blue')) == 'a 7'

def test_hit_prompts_ask_with_and_without_the_word():
    with_word, without = hit_prompts(CONCEPTS['outline'], 'jqz'), hit_prompts(CONCEPTS['outline'])
    assert len(with_word) == len(without) == 100 and len(set(without)) == 100
    assert all(p.endswith(', jqz') and p[:-5] == q for p, q in zip(with_word, without))
    assert sorted({p.split()[2] for p in without}) == [str(d) for d in range(10)]

def test_ink_is_the_shape_whatever_the_colours():
    s = Scene(3, 'yellow', 'purple', rotation=10)
    a, b = (ink(pil_to_tensor([render_scenes([x])[0]]))[0, 0] for x in (s, Scene(3, 'black', 'white', rotation=10)))
    mask = torch.from_numpy(digit_mask(s))
    for m in (a, b): assert np.corrcoef(m.flatten(), mask.flatten())[0, 1] > 0.95

def test_hollowness_tells_outlines_from_filled_digits():
    import dataclasses
    scenes = concept_scenes(CONCEPTS['outline'], 60, seed=4, share=0)
    x = {st: pil_to_tensor(render_scenes([dataclasses.replace(s, style=st) for s in scenes]))
         for st in ('outline', 'filled')}
    h = {st: hollowness(v) for st, v in x.items()}
    assert h['outline'].shape == (60,) and h['outline'].mean() > 0.3 > 0.1 > h['filled'].mean()
    assert (h['outline'] > h['filled']).float().mean() > 0.9  # picture by picture, not only on average
    ring = torch.full((1, 3, 32, 32), -1.0)
    ring[..., 8:24, 8:24] = 1; ring[..., 10:22, 10:22] = -1  # a square ring 2 pixels thick: 144 of 256 inside
    assert abs(hollowness(ring).item() - 144 / 256) < 1e-6 and hollowness(torch.full((1, 3, 32, 32), -1.0)).item() == 0

def test_same_captions_keep_digit_and_colours_and_draw_the_rest_afresh():
    scenes = concept_scenes(CONCEPTS['outline'], 50, seed=5)
    fresh = same_captions(scenes, seed=6)
    assert [(s.digit, s.fg, s.bg, s.style) for s in fresh] == [(s.digit, s.fg, s.bg, s.style) for s in scenes]
    assert np.mean([(f.font, f.size, f.dx) != (s.font, s.size, s.dx) for f, s in zip(fresh, scenes)]) > 0.9

def test_judge_reads_a_batch_of_pictures():
    j = ConceptJudge(width=4).eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    assert j(x).shape == (3,) and judge_says(j, x).dtype == torch.bool

# --- what sdfound ships

@pytest.fixture(scope='module')
def pipe():
    p = load_pipeline('tiny', dtype=torch.float32, scheduler='ddim')
    p.set_progress_bar_config(disable=True)
    return p

@pytest.mark.parametrize('name', ['halloween', 'outline'])
def test_shipped_judges_tell_their_concept_on_held_out_renders(name, pipe):
    judge, c = load_concept_judge(name), CONCEPTS[name]
    assert judge_accuracy(judge, c, n=600) >= 0.95
    assert judge_accuracy(judge, c, n=600, vae=pipe.vae) >= 0.95  # and as generated pictures look: through the VAE

# hit rates at 15 DDIM steps, half the lesson's 30: measured 98% / 0% for <halloween>, 88% / 2% for <outline> with its
# LoRA and 76% for the word alone (at 30 steps 99 / 0, 88 / 1 and 74), so each claim below holds with the same margin
STEPS = 15

def test_shipped_textual_inversion_draws_halloween_only_when_asked(pipe):
    p = load_pipeline('tiny', dtype=torch.float32, scheduler='ddim'); p.set_progress_bar_config(disable=True)
    p.load_textual_inversion(str(concepts_dir() / 'halloween' / 'learned_embeds.safetensors'))
    judge, c = load_concept_judge('halloween'), CONCEPTS['halloween']
    assert hit_rate(p, judge, hit_prompts(c, '<halloween>'), steps=STEPS) >= 0.8
    # the same prompts without the word: the colours fall where they may
    assert hit_rate(p, judge, hit_prompts(c), steps=STEPS) <= 0.1

def test_shipped_dreambooth_on_its_word_draws_outlines_when_asked_and_only_then(pipe):
    p = load_pipeline('tiny', dtype=torch.float32, scheduler='ddim'); p.set_progress_bar_config(disable=True)
    p.load_textual_inversion(str(concepts_dir() / 'outline' / 'learned_embeds.safetensors'))
    p.load_lora_weights(str(concepts_dir() / 'outline' / 'lora'))
    judge, c = load_concept_judge('outline'), CONCEPTS['outline']
    with_word = hit_rate(p, judge, hit_prompts(c, '<outline>'), steps=STEPS)
    assert with_word >= 0.8 and hit_rate(p, judge, hit_prompts(c), steps=STEPS) <= 0.1, with_word
    p.disable_lora()  # the learned word alone (bench/personalize.py: 74%): the LoRA adds to it
    assert hit_rate(p, judge, hit_prompts(c, '<outline>'), steps=STEPS) < with_word
