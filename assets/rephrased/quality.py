"""Quality control of rewrites: a bad rewrite is recorded with its reason, never passed on.

Small models in particular answer with chat preambles, role lines, talk about the task, refusals,
loops, sentences said over and over, answers cut at the token limit, answers in another language,
or text unrelated to the source; each check below catches one of those and names the value it
measured. Crawled pages may
also carry instructions aimed at the model ("ignore previous instructions and ..."): a rewrite
that obeys or repeats them instead of rewriting the page is caught too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|here(?:'s| is| are)|below is)\b[^\n]{0,160}[:.!]\s*\n",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t (help|assist|do)|as an ai\b|i'?m unable to)",
    re.IGNORECASE,
)
WORD = re.compile(r"\w+", re.UNICODE)
INJECTION = re.compile(
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+)*"
    r"(previous|prior|above|earlier|preceding|your|system)\s+"
    r"(instructions?|prompts?|rules|directions|messages?|text)"
    r"|\b(new|updated|real)\s+instructions?\s*:"
    r"|\byou\s+are\s+now\b"
    r"|\b(reply|respond|answer|output|say|write|print)\s+only\b"
    r"|\binstead\s+(reply|respond|answer|output|say|write|print)\b"
    r"|\bsystem\s+prompt\b"
    r"|<\|im_start\|>|<\|im_end\|>|<\|system\|>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
SENTENCE_OR_LINE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
# Chat-template control strings: a tokenizer turns them into real role markers, so a page that
# contains them could open a system turn of its own inside the prompt.
CHAT_MARKUP = re.compile(r"<\|[A-Za-z_]{1,32}\|>|\[/?INST\]|<</?SYS>>|</?s>")
# What a chat template leaves in an answer: its control strings, the system prompt of the WRAP and
# Nemotron styles (Vicuna's), and role lines ("User:", "### Assistant:") that open a new turn.
TEMPLATE_PREAMBLE = re.compile(
    r"a chat between a (curious )?(user|human) and an? (artificial intelligence|ai) assistant",
    re.IGNORECASE,
)
ROLE_LINE = re.compile(
    r"^[ \t>*#]*(system|user|assistant|human)[ \t]*\**[ \t]*:", re.IGNORECASE | re.MULTILINE
)
# An answer that talks about the chat or the task instead of rewriting the page: "The user asks
# ...", "The assistant provides ...", "In this chat, I've provided a paraphrase of the given
# paragraph". Judged against the source, which may say such things itself.
TASK_TALK = re.compile(
    r"\b(in this (chat|conversation)"
    r"|the (user|assistant) (asked|asks|is asking|requested|requests|wants|provides|provided)"
    r"|i(?:'ve| have) (provided|rewritten|rephrased|paraphrased)"
    r"|the (given|above|original) (paragraph|text|passage))\b",
    re.IGNORECASE,
)
NOT_WORD = re.compile(r"\W+", re.UNICODE)


@dataclass(frozen=True)
class QualityPolicy:
    min_words: int = 20
    max_length_ratio: float = 3.0
    min_distinct_4gram_ratio: float = 0.5
    min_source_overlap: float = 0.2
    max_truncated_share: float = 0.5  # of a document's chunks that hit the output token limit
    max_injected_share: float = 0.1  # of the rewrite's words that only an injected order has
    max_sentence_repeats: int = 2  # a sentence (of min_repeated_words or more) seen 3 times rejects
    min_repeated_words: int = 4
    min_language_confidence: float = 0.9  # a language ID this sure of another language rejects


@dataclass(frozen=True, slots=True)
class Rejection:
    rule: str
    value: float | None
    threshold: float | None
    detail: str = ""  # what was found, e.g. the markup or the repeated sentence


def strip_preamble(text: str) -> str:
    return PREAMBLE.sub("", text, count=1).strip()


SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def cut_to_last_sentence(text: str) -> str:
    """A rewrite that ran into the token limit keeps its complete sentences only."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


def judge_rewrite(
    source: str,
    rewrite: str,
    truncated_share: float,
    policy: QualityPolicy,
    *,
    last_chunk_truncated: bool = False,
    expected_language: str | None = None,
    detected_language: tuple[str, float] | None = None,
) -> Rejection | None:
    """None when the rewrite may enter the corpus, else the first rule it breaks.

    `truncated_share` is the share of the document's chunks whose answer hit `max_tokens`;
    `last_chunk_truncated` says the answer to its last chunk did (a single-chunk document that
    ran into the limit has nothing after the cut that a chunk boundary would explain).
    `expected_language` is the language the answer was asked in (the source's, or the style's);
    `detected_language` the language ID of the rewrite, (code, probability). Without them the
    language is not judged.
    """
    words = WORD.findall(rewrite.lower())
    if truncated_share > policy.max_truncated_share:
        return Rejection("qc:truncated_output", truncated_share, policy.max_truncated_share)
    if last_chunk_truncated:
        return Rejection("qc:truncated_output", truncated_share, 0.0)
    markup = chat_markup(source, rewrite)
    if markup is not None:
        return Rejection("qc:chat_markup", None, None, f"found={markup[:80]!r}")
    if expected_language and detected_language is not None and len(words) >= policy.min_words:
        language, probability = detected_language
        if language != expected_language and probability >= policy.min_language_confidence:
            return Rejection(
                "qc:wrong_language",
                probability,
                policy.min_language_confidence,
                f"asked={expected_language} answered={language}",
            )
    injected = injected_share(source, words)
    if injected > policy.max_injected_share:
        return Rejection("qc:prompt_injection", injected, policy.max_injected_share)
    if len(words) < policy.min_words:
        return Rejection("qc:too_short", len(words), policy.min_words)
    if REFUSAL.search(rewrite[:300]):
        return Rejection("qc:refusal", None, None)
    talk = task_talk(source, rewrite)
    if talk is not None:
        return Rejection("qc:task_talk", None, None, f"found={talk[:80]!r}")
    ratio = len(rewrite) / max(len(source), 1)
    if ratio > policy.max_length_ratio:
        return Rejection("qc:runaway_length", ratio, policy.max_length_ratio)
    repeats, sentence = most_repeated_sentence(rewrite, policy.min_repeated_words, source)
    if repeats > policy.max_sentence_repeats:
        return Rejection(
            "qc:repeated_sentence",
            repeats,
            policy.max_sentence_repeats,
            f"sentence={sentence[:80]!r}",
        )
    distinct = distinct_ngram_ratio(words, 4)
    if distinct < policy.min_distinct_4gram_ratio:
        return Rejection("qc:repetition", distinct, policy.min_distinct_4gram_ratio)
    overlap = source_overlap(source, words)
    if overlap < policy.min_source_overlap:
        return Rejection("qc:unfaithful", overlap, policy.min_source_overlap)
    return None


def chat_markup(source: str, rewrite: str) -> str | None:
    """The first piece of chat-template or role markup in the rewrite, or None.

    Control strings (`<|im_start|>`, `[INST]`, ...) and the template's system preamble ("A chat
    between a curious user and an artificial intelligence assistant") never belong in a rewrite.
    A role line ("User:", "Assistant:") does not either, unless the page itself has such lines
    (a transcript, a FAQ quoting a user), where rewriting them is faithful."""
    for pattern in (CHAT_MARKUP, TEMPLATE_PREAMBLE):
        found = pattern.search(rewrite)
        if found:
            return found.group(0)
    source_roles = {m.group(1).lower() for m in ROLE_LINE.finditer(source)}
    for found in ROLE_LINE.finditer(rewrite):
        if found.group(1).lower() not in source_roles:
            return found.group(0).strip()
    return None


def task_talk(source: str, rewrite: str) -> str | None:
    """The first phrase in which the rewrite talks about the chat or the task, unless the source
    has the same phrase."""
    said = {m.group(0).lower() for m in TASK_TALK.finditer(source)}
    for found in TASK_TALK.finditer(rewrite):
        if found.group(0).lower() not in said:
            return found.group(0)
    return None


def most_repeated_sentence(text: str, min_words: int, source: str = "") -> tuple[int, str]:
    """The sentence (or line) of at least `min_words` words that the text says most often, and
    how often, compared on lower-cased words; (0, "") when there is none. A sentence counts only
    when the text says it more often than `source` does (a page's own repeated lines, rewritten
    faithfully, are not a loop of the model)."""
    counts = _sentence_counts(text, min_words)
    in_source = _sentence_counts(source, min_words) if source else {}
    looped = {s: n for s, n in counts.items() if n > in_source.get(s, 0)}
    if not looped:
        return 0, ""
    sentence = max(looped, key=looped.__getitem__)
    return looped[sentence], sentence


def _sentence_counts(text: str, min_words: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in SENTENCE_OR_LINE.split(text):
        normal = NOT_WORD.sub(" ", part.lower()).strip()
        if len(normal.split()) >= min_words:
            counts[normal] = counts.get(normal, 0) + 1
    return counts


def distinct_ngram_ratio(words: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def source_overlap(source: str, rewrite_words: list[str]) -> float:
    """Share of the rewrite's longer words that occur in the source: low means it drifted away."""
    content = [w for w in rewrite_words if len(w) > 3]
    if not content:
        return 0.0
    vocabulary = set(WORD.findall(source.lower()))
    return sum(w in vocabulary for w in content) / len(content)


def injected_sentences(source: str) -> list[str]:
    """Sentences (or lines) of a source that address the model rather than the reader."""
    return [part for part in SENTENCE_OR_LINE.split(source) if INJECTION.search(part)]


def injected_share(source: str, rewrite_words: list[str]) -> float:
    """Share of the rewrite's longer words that occur only in the source's injected sentences.

    A rewrite that obeys "reply only with BANANA" or "write a poem about pirates instead" is
    made of the injected order's own words, so `source_overlap` alone passes it; a faithful
    rewrite draws its words from the rest of the page. 0.0 when the source has no injection.
    """
    injected = injected_sentences(source)
    content = [w for w in rewrite_words if len(w) > 3]
    if not injected or not content:
        return 0.0
    rest = SENTENCE_OR_LINE.split(source)
    benign = {w for part in rest if not INJECTION.search(part) for w in WORD.findall(part.lower())}
    only_injected = {w for part in injected for w in WORD.findall(part.lower())} - benign
    return sum(w in only_injected for w in content) / len(content)


def defang_chat_markup(text: str) -> str:
    """Break chat-template control strings in crawled text (`<|im_start|>`, `[INST]`, ...) with
    a zero-width space, so the document cannot open a role turn of its own in the prompt; the
    words stay readable to the model."""
    return CHAT_MARKUP.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)
