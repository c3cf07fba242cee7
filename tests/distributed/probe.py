"""Run by tests/test_distributed.py, once with one process and once under torchrun with two: everything that must
not change with the number of processes, recorded in one launch each.

- `fit` two steps on a known batch: which samples each process saw, the gradients it stepped with, the weights;
- CLIP's contrastive loss and its gradients for one global batch, each process holding its share;
- Dreambooth's LoRA, three steps on a small random pipeline: the adapter's weights;
- a run cut short after its step-2 checkpoint and resumed: the weights, against an uninterrupted run."""
import os, sys
from pathlib import Path
import accelerate, torch
sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, for conftest's small pipeline
from conftest import cut_at, random_small_pipeline, sine_loss, sine_net
from sdfound.train import fit, process_share, end_processes

OUT, RANK = Path(sys.argv[1]), os.environ.get('RANK', 'single')
state = accelerate.Accelerator()  # joins torchrun's processes (one process: nothing to join)

def fit_probe() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    g = lambda s: torch.Generator().manual_seed(s)
    X, Y, IDX = torch.randn(8, 3, generator=g(1)), torch.randn(8, 2, generator=g(2)), torch.arange(8)
    seen, grads, clip = [], [], accelerate.Accelerator.clip_grad_norm_
    def loss_fn(m, b):
        seen.append(b['idx'].tolist())
        return (m(b['x']) - b['y']).pow(2).mean()  # a mean over the samples, as the UNet's and the VAE's losses are
    def record(self, params, *args, **kwargs):  # gradients as the optimiser will see them
        params = list(params)
        grads.append([p.grad.clone() for p in params])
        return clip(self, params, *args, **kwargs)
    accelerate.Accelerator.clip_grad_norm_ = record
    try: losses = fit(model, loss_fn, lambda step: dict(x=X, y=Y, idx=IDX), steps=2, lr=1e-2, warmup=1,
                      ckpt_dir=OUT / 'ckpt', progress=False)
    finally: accelerate.Accelerator.clip_grad_norm_ = clip
    return dict(seen=seen, grads=grads, weight=model.weight.detach(), losses=losses)

def clip_probe() -> dict:
    from transformers import CLIPModel
    from sdfound.clip import clip_loss, tiny_clip_config, train_tokenizer, tokenize
    from sdfound.data import DigitScenes
    ds = DigitScenes(8, seed=0)
    caps = [ds[i]['caption'] for i in range(8)]
    tok = train_tokenizer(caps, vocab_size=120)
    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(tok, width=32, layers=1))
    batch = dict(input_ids=tokenize(tok, caps), pixel_values=torch.stack([ds[i]['image'] for i in range(8)]))
    wrapped = state.prepare(_Loss(model))  # DDP, as `fit` wraps it
    loss = wrapped(process_share(batch, state.process_index, state.num_processes))
    state.backward(loss)  # DDP averages the gradients of the processes' shares
    return dict(loss=loss.item(), grads={n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})

class _Loss(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
    def forward(self, batch):
        from sdfound.clip import clip_loss
        return clip_loss(self.model, batch)

def dreambooth_probe() -> dict:
    from diffusers import DDIMScheduler
    from sdfound.data import DigitScenes
    from sdfound.personalize import train_dreambooth
    pipe = random_small_pipeline(DDIMScheduler(num_train_timesteps=1000))
    ds = DigitScenes(4, seed=3)
    images, prompts = [ds.pil(i) for i in range(4)], [ds[i]['caption'] + ', jqz' for i in range(4)]
    log = train_dreambooth(pipe, images, prompts, 'jqz', steps=3, lr=1e-3, batch_size=4, lora_rank=2, progress=False)
    lora = {n: p.detach().clone() for n, p in pipe.unet.named_parameters() if 'lora_' in n}
    return dict(lora=lora, loss=log['loss'])

def resume_probe() -> dict:
    xs = torch.linspace(-1, 1, 8)[:, None]
    batches = lambda step: dict(x=xs + 0.01 * torch.randn(xs.shape, generator=torch.Generator().manual_seed(step)))
    kw = dict(steps=6, lr=0.05, warmup=2, ckpt_every=2, ema=0.5, progress=False)
    straight = sine_net(8)
    fit(straight, sine_loss, batches, ckpt_dir=OUT / 'straight', **kw)
    try: fit(sine_net(8), sine_loss, cut_at(batches, 3), ckpt_dir=OUT / 'resumed', **kw)  # after the step-2 checkpoint
    except KeyboardInterrupt: pass
    resumed = sine_net(8)
    losses = fit(resumed, sine_loss, batches, ckpt_dir=OUT / 'resumed', **kw)
    return dict(straight=[p.detach() for p in straight.parameters()], resumed=[p.detach() for p in resumed.parameters()],
                losses=losses)

results = dict(fit=fit_probe(), clip=clip_probe(), dreambooth=dreambooth_probe(), resume=resume_probe())
torch.save(results, OUT / f'probe{RANK}.pt')
end_processes()  # a clean exit for every process
