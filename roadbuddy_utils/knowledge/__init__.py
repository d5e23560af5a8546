"""Sign knowledge: the QCVN 41:2024 glossary (glossary.py, glossary.json), grounding a question in it
(ground.py) and the ``knowledge`` command (cli.py). Level 3: it reads data/ and nothing above."""
