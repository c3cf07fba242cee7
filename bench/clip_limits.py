"""What limits a small CLIP's digit quiz? Exploration runs behind bench/results/ink_clip.md, one model per run:

    python bench/clip_limits.py --mode sup --steps 600                      # the CNN alone, told the digit
    python bench/clip_limits.py --mode clip --groups 25 --steps 600         # CNN + 1-layer text, same-colour batches
    python bench/clip_limits.py --mode clip --groups 10 --pool mean --steps 800
    python bench/clip_limits.py --mode clip --groups 10 --pool oracle --steps 400   # text = one vector per label
    python bench/clip_limits.py --mode clip --groups 10 --pool mean --ink 1 --steps 3000
    python bench/clip_limits.py --mode clip --groups 10 --temp 0.02 --learn_temp 0 --lr 3e-3 --steps 800

Prints the lesson's quiz (`DigitScenes(200, seed=12)`) every 100 steps: step, loss, quiz, logit scale, seconds.
"""
import argparse, json, sys, time, math
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from sdfound.data import DigitScenes, COLOURS
from sdfound.clip import train_tokenizer, tokenize, same_colour_batches, contrastive_loss
from sdfound.concepts import ink
from transformers import CLIPTextConfig, CLIPTextModelWithProjection
def main():
    p = argparse.ArgumentParser()
    for k, v in dict(mode='sup', steps=600, lr=2e-3, w=16, n=6000, groups=25, bs=250, threads=1, tw=64, tl=1, name='x', temp=0.07, learn_temp=1, pool='eos', ink=0, norm='bn', save='').items():
        p.add_argument('--' + k, type=type(v), default=v)
    a = p.parse_args(); torch.set_num_threads(a.threads); torch.manual_seed(0)
    t0 = time.time()
    pool = DigitScenes(a.n, seed=13)
    items = [pool[i] for i in range(a.n)]
    X = torch.stack([it['image'] for it in items]); caps = [it['caption'] for it in items]
    sc = [pool.scene(i) for i in range(a.n)]
    lab = dict(digit=torch.tensor([s.digit for s in sc]), fg=torch.tensor([COLOURS.index(s.fg) for s in sc]), bg=torch.tensor([COLOURS.index(s.bg) for s in sc]))
    quiz = DigitScenes(200, seed=12); QX = torch.stack([quiz[i]['image'] for i in range(200)]); QS = [quiz.scene(i) for i in range(200)]
    print(f'data {time.time()-t0:.0f}s', flush=True)
    def cnn(w, out):
        Norm = (lambda c: nn.BatchNorm2d(c)) if a.norm == 'bn' else (lambda c: nn.GroupNorm(4, c))
        conv = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), Norm(o), nn.ReLU())
        return nn.Sequential(conv(3 + a.ink, w, 2), conv(w, 2 * w, 1), conv(2 * w, 2 * w, 2), conv(2 * w, 4 * w, 1), conv(4 * w, 4 * w, 2),
                             conv(4 * w, 4 * w, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, out))
    def sched(step): return min(1, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
    if a.mode == 'sup':
        a.ink = 0; m = cnn(a.w, 10); opt = torch.optim.AdamW(m.parameters(), a.lr, weight_decay=0.01)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, sched)
        for step in range(a.steps):
            i = torch.randint(0, a.n, (128,)); loss = F.cross_entropy(m(X[i]), lab['digit'][i])
            opt.zero_grad(); loss.backward(); opt.step(); sch.step()
            if step % 100 == 0 or step == a.steps - 1:
                m.eval()
                with torch.no_grad(): acc = (m(QX).argmax(1) == torch.tensor([s.digit for s in QS])).float().mean().item()
                m.train(); print(step, round(loss.item(), 3), 'quiz digit', acc, f'{time.time()-t0:.0f}s', flush=True)
        print('params', sum(p.numel() for p in m.parameters()))
        return
    tok = train_tokenizer(caps, 400)
    ids = tokenize(tok, caps)
    tcfg = CLIPTextConfig(vocab_size=len(tok), hidden_size=a.tw, intermediate_size=2 * a.tw, num_hidden_layers=a.tl, num_attention_heads=4,
                          max_position_embeddings=tok.model_max_length, projection_dim=a.tw, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    class CC(nn.Module):
        def __init__(s):
            super().__init__(); s.text = CLIPTextModelWithProjection(tcfg); s.image = cnn(a.w, a.tw)
            s.dig, s.fgc, s.bgc = nn.Embedding(10, a.tw), nn.Embedding(8, a.tw), nn.Embedding(8, a.tw)
            s.logit_scale = nn.Parameter(torch.tensor(math.log(1 / a.temp)), requires_grad=bool(a.learn_temp))
        def tf(s, ids):
            if a.pool == 'oracle':
                return s.dig(s.cur['digit']) + s.fgc(s.cur['fg']) + s.bgc(s.cur['bg'])
            if a.pool == 'eos': return s.text(input_ids=ids).text_embeds
            h = s.text.text_model(input_ids=ids).last_hidden_state          # mean over the caption's tokens, EOS included
            keep = (torch.cumsum((ids == tok.eos_token_id).long(), 1) - (ids == tok.eos_token_id).long() == 0).float()[..., None]
            return s.text.text_projection((h * keep).sum(1) / keep.sum(1))
        def imf(s, x):
            if a.ink: x = torch.cat([x, ink(x) * 2 - 1], 1)
            return s.image(x)
    m = CC(); print('params', sum(p.numel() for p in m.parameters()), 'text', sum(p.numel() for p in m.text.parameters()), flush=True)
    pick = same_colour_batches(lab, a.groups) if a.groups else (lambda step: torch.randperm(a.n, generator=torch.Generator().manual_seed(step))[:a.bs])
    opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], a.lr, weight_decay=0.01)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, sched)
    def quizz():
        m.eval()
        with torch.no_grad():
            pe = F.normalize(m.imf(QX), dim=-1); r = dict(digit=0, colour=0)
            for i, s in enumerate(QS):
                opts = dict(digit=[f'a {s.fg} {d} on a {s.bg} background' for d in range(10)],
                            colour=[f'a {c} {s.digit} on a {s.bg} background' for c in COLOURS if c != s.bg])
                truth = dict(digit=s.digit, colour=[c for c in COLOURS if c != s.bg].index(s.fg))
                if a.pool == 'oracle':
                    C = COLOURS.index
                    m.cur = dict(digit=torch.arange(10), fg=torch.full((10,), C(s.fg)), bg=torch.full((10,), C(s.bg)))
                    r['digit'] += int((F.normalize(m.tf(None), dim=-1) @ pe[i]).argmax() == s.digit)
                    continue
                for k, cs in opts.items(): r[k] += int((F.normalize(m.tf(tokenize(tok, cs)), dim=-1) @ pe[i]).argmax() == truth[k])
        m.train(); return {k: v / 200 for k, v in r.items()}
    for step in range(a.steps):
        i = pick(step); m.cur = {k: v[i] for k, v in lab.items()}; loss = contrastive_loss(m.tf(ids[i]), m.imf(X[i]), m.logit_scale)
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
        if step % 100 == 0 or step == a.steps - 1:
            print(step, round(loss.item(), 3), quizz(), round(m.logit_scale.exp().item(), 1), f'{time.time()-t0:.0f}s', flush=True)
    r = dict(name=a.name, args=vars(a), quiz=quizz(), secs=round(time.time() - t0))
    print(json.dumps(r)); pass
    if a.save: torch.save(m.state_dict(), a.save)


if __name__ == '__main__':
    main()
