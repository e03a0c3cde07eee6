"""Output tokens per second: the in-process vLLM rewriter against a plain transformers loop.

Same model (the packaged SmolLM2-135M-Instruct), same chat prompts (one rewrite style over real
sample text), same output length (forced with ignore_eos / min_new_tokens), greedy decoding.
Engine and model loading are outside the timings, and both sides are warmed up with one call
on two prompts before they are timed. Both run in float32 (transformers' fastest CPU dtype), so
neither is handicapped by bfloat16 emulation and both compute the same arithmetic.

Two peers: the plain `generate` loop (one prompt per call, what most scripts do; timed on the
first prompts only, since a sequential loop's tokens/s does not depend on how many follow) and a
stronger left-padded batch of 8 prompts per `generate` call over all prompts.
"""

from __future__ import annotations

import time

from assets.rephrased.styles import get_style
from benchmarks.bench_filters import load_texts
from resources.models import prepare_smollm2
from resources.rewriter import VLLMRewriter

PROMPTS = 32
PLAIN_LOOP_PROMPTS = 6
OUTPUT_TOKENS = 128
BATCH = 8
DTYPE = "float32"


def _conversations() -> list[list[dict]]:
    style = get_style("wrap_wikipedia")
    texts = [t for t, lang in load_texts() if lang == "en"][:PROMPTS]
    return [style.messages(" ".join(t.split()[:200])) for t in texts]


def _vllm(conversations: list[list[dict]]) -> float:
    from vllm import SamplingParams

    engine = VLLMRewriter(max_model_len=1024, dtype=DTYPE).engine()
    params = SamplingParams(temperature=0.0, max_tokens=OUTPUT_TOKENS, ignore_eos=True)
    engine.chat(conversations[:2], params, use_tqdm=False)
    started = time.perf_counter()
    outputs = engine.chat(conversations, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    return sum(len(o.outputs[0].token_ids) for o in outputs) / seconds


def _transformers(conversations: list[list[dict]], batch: int) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, DTYPE)).eval()
    _generate(model, tokenizer, conversations[:2])  # warm-up, as vLLM's side
    generated = 0
    started = time.perf_counter()
    for i in range(0, len(conversations), batch):
        generated += _generate(model, tokenizer, conversations[i : i + batch])
    return generated / (time.perf_counter() - started)


def _generate(model, tokenizer, conversations: list[list[dict]]) -> int:
    """One left-padded `generate` call; returns the number of new tokens."""
    import torch

    prompts = [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=OUTPUT_TOKENS,
            min_new_tokens=OUTPUT_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]


def run() -> dict:
    conversations = _conversations()
    vllm_tps = _vllm(conversations)
    plain_tps = _transformers(conversations[:PLAIN_LOOP_PROMPTS], batch=1)
    batched_tps = _transformers(conversations, batch=BATCH)
    return {
        "prompts": len(conversations),
        "output_tokens_each": OUTPUT_TOKENS,
        "dtype": DTYPE,
        "vllm_output_tok_per_s": round(vllm_tps, 1),
        "transformers_plain_loop_output_tok_per_s": round(plain_tps, 1),
        f"transformers_batch{BATCH}_output_tok_per_s": round(batched_tps, 1),
        "ratio_vs_plain_loop": round(vllm_tps / plain_tps, 2),
        f"ratio_vs_batch{BATCH}": round(vllm_tps / batched_tps, 2),
    }
