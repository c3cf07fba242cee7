import numpy as np, pytest, torch
from sdfound.data import (DigitScenes, GrayDigits, Scene, render_scene, digit_mask, caption, parse_caption, renders_digits,
                          recognised_digits, font_dir, FONTS, COLOURS, PALETTE, TEMPLATES, DIGIT_WORDS, load_mnist, load_fashion_mnist)

def test_same_seed_gives_identical_images():
    a, b = DigitScenes(50, seed=7), DigitScenes(50, seed=7)
    for i in (0, 13, 49):  # order of access must not matter
        assert np.array_equal(np.asarray(a.pil(i)), np.asarray(b.pil(i)))
        assert torch.equal(a[i]['image'], b[i]['image']) and a[i]['caption'] == b[i]['caption']
    c = DigitScenes(50, seed=8)
    assert not np.array_equal(np.asarray(a.pil(0)), np.asarray(c.pil(0)))

def test_item_format():
    it = DigitScenes(4)[2]
    assert it['image'].shape == (3, 64, 64) and it['image'].dtype == torch.float32
    assert -1 <= it['image'].min() and it['image'].max() <= 1
    assert set(it) == {'image', 'caption', 'digit', 'fg', 'bg', 'font', 'style'}

def test_foreground_pixels_have_the_named_colour():
    ds = DigitScenes(200, seed=1)
    for i in range(len(ds)):
        s = ds.scene(i)
        img = np.asarray(ds.pil(i), dtype=np.float32)
        m = digit_mask(s, ds.res)
        ink, paper = img[m >= 0.999], img[m <= 0.001]  # pure ink and pure paper, no anti-aliased edge
        assert len(ink) > 20, f"item {i}: almost no ink"
        assert np.abs(ink.mean(0) - PALETTE[s.fg]).max() <= 8.5, (i, s.fg, ink.mean(0))
        assert np.abs(paper.mean(0) - PALETTE[s.bg]).max() <= 8.5, (i, s.bg, paper.mean(0))
        # the named colour is the nearest palette colour to the ink
        nearest = min(COLOURS, key=lambda c: np.linalg.norm(ink.mean(0) - PALETTE[c]))
        assert nearest == s.fg

def test_caption_names_the_digit_drawn_and_colours():
    ds = DigitScenes(300, seed=2)
    for i in range(len(ds)):
        it, s = ds[i], ds.scene(i)
        lab = parse_caption(it['caption'])
        assert lab['digit'] == it['digit'] == s.digit
        if lab['fg'] is not None: assert COLOURS.index(lab['fg']) == it['fg']
        if lab['bg'] is not None: assert COLOURS.index(lab['bg']) == it['bg']
        assert it['fg'] != it['bg']

def test_the_digit_drawn_is_the_digit_in_the_labels():
    from sdfound.data import recognise_digit
    for font in FONTS:
        for d in range(10):
            assert recognise_digit(digit_mask(Scene(d, 'white', 'black', font, size=0.8), 64)) == d, (font, d)
    # the dataset's own random fonts, sizes and offsets (thin strokes, upright: what the simple recogniser can read)
    from dataclasses import replace
    ds = DigitScenes(100, seed=3)
    wrong = [i for i in range(100) if recognise_digit(digit_mask(replace(ds.scene(i), stroke=0, rotation=0), 64)) != ds[i]['digit']]
    assert len(wrong) <= 3, wrong

@pytest.mark.parametrize('t', range(len(TEMPLATES)))
@pytest.mark.parametrize('style', ['filled', 'outline'])
def test_every_template_parses_back_to_its_labels(t, style):
    for d in range(10):
        for fg, bg in [('red', 'blue'), ('orange', 'green'), ('white', 'black')]:
            s = Scene(d, fg, bg, template=t, style=style)
            lab = parse_caption(caption(s))
            assert lab['digit'] == d and lab['style'] == style and lab['template'] == t
            assert lab['fg'] in (fg, None) and lab['bg'] in (bg, None)
            assert (lab['fg'] is None) == ('{fg}' not in TEMPLATES[t]) and (lab['bg'] is None) == ('{bg}' not in TEMPLATES[t])

def test_example_caption_and_articles():
    assert caption(Scene(7, 'red', 'blue')) == 'a red 7 on a blue background'
    assert caption(Scene(8, 'orange', 'blue', template=4)).startswith('an 8 on')
    assert parse_caption('not a caption') is None

def test_fonts_in_use_really_draw_digits():
    for f in FONTS: assert renders_digits(f), f

@pytest.mark.parametrize('bad', ['DejaVuSansDisplay', 'STIXNonUni', 'STIXSizOneSymReg', 'cmex10', 'cmsy10', 'LastResortHE-Regular'])
def test_fonts_that_draw_symbols_or_nothing_are_rejected(bad):
    assert (font_dir() / f'{bad}.ttf').exists()
    assert not renders_digits(bad) and bad not in FONTS

def test_held_out_styles_and_fonts_can_be_chosen():
    ds = DigitScenes(40, fonts=['cmtt10'], styles=['outline'])
    assert all(ds.scene(i).font == 'cmtt10' and ds.scene(i).style == 'outline' for i in range(40))
    assert all(caption(ds.scene(i)).endswith('drawn in outline') for i in range(40))
    assert 'cmtt10' not in {DigitScenes(200, fonts=[f for f in FONTS if f != 'cmtt10']).scene(i).font for i in range(200)}

def test_gray_digits_look_like_mnist():
    g = GrayDigits(20, seed=0)
    it = g[3]
    assert it['image'].shape == (1, 28, 28) and 0 <= it['image'].min() and it['image'].max() <= 1
    assert it['image'].max() > 0.9 and it['image'].mean() < 0.5  # white ink on black
    assert it['label'] == g.scenes.scene(3).digit
    assert torch.equal(GrayDigits(20, seed=0)[3]['image'], it['image'])

def test_unknown_colour():
    with pytest.raises(ValueError, match="unknown colour 'teal'"): Scene(1, 'teal', 'blue')
    with pytest.raises(ValueError, match="unknown colour 'teal'"): DigitScenes(5, colours=['red', 'teal'])

def test_index_out_of_range():
    ds = DigitScenes(10)
    with pytest.raises(IndexError, match='index 10 out of range'): ds[10]
    with pytest.raises(IndexError): ds[-11]
    assert torch.equal(ds[-1]['image'], ds[9]['image'])

@pytest.mark.parametrize('kw,msg', [(dict(n=-5), 'n must be'), (dict(res=0), 'res must be'), (dict(seed=-1), 'seed must be'),
                                    (dict(size_range=(-0.2, 0.5)), 'size_range')])
def test_negative_sizes(kw, msg):
    with pytest.raises(ValueError, match=msg): DigitScenes(**{'n': 5, **kw})

def test_negative_scene_size():
    with pytest.raises(ValueError, match='size must be'): Scene(1, 'red', 'blue', size=-0.3)
    with pytest.raises(ValueError, match='must differ'): Scene(1, 'red', 'red')

def test_missing_font():
    with pytest.raises(ValueError, match="unknown font 'Comic'"): DigitScenes(5, fonts=['Comic'])
    from sdfound.data import font_path
    with pytest.raises(FileNotFoundError, match="font 'NoSuchFont' not found"): font_path('NoSuchFont')

@pytest.mark.parametrize('loader', [load_mnist, load_fashion_mnist])
def test_hub_datasets_offline_fail_clearly(loader, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1'); monkeypatch.setenv('HF_DATASETS_OFFLINE', '1')
    with pytest.raises((ConnectionError, ImportError), match='GrayDigits'): loader()
