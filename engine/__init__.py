"""Training and unlearning machinery: the table of defaults, training of originals and Oracles, the
unlearning loop, synthetic embeddings, surrogate images and cached embeddings. Takes plain values and
small dataclasses, never the command-line namespace."""
