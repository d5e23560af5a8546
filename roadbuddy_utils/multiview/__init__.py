"""The multi-camera driving QA pipeline (DriveBench / RoboSense Track 1), notebook 06.

    data       items, cameras, object tags, the options written in a question
    router     question -> official subtask; the routing table (subtask -> model size, style)
    prompts    the multi-image prompt
    retrieval  knowledge-base notes (TF-IDF), hint / override, leakage guard
    scoring    offline scores (accuracy, ROUGE-L, BLEU-4, METEOR by Python scorers), routing statistics
    official   the RoboSense Track 1 formula (phase 1, phase 2, final), counts, DriveBench's letter regex
    cocoeval   ROUGE-L / METEOR 1.5 / BLEU-4 as the toolkit computes them (pycocoevalcap, Java) or approximated
    judge      a local LLM judge of open answers with the toolkit's rubrics (judge_prompts), cached by position
    mvscore    mv-score: joins by position, per-subtask figures and phase scores with intervals by scene
    run        models by size, the answering loop with fallback, resumable results
    ensemble   several runs' results.json combined by position (vote, mean; open answers kept)
    demo       stand-in six-camera images and KB for the demo profile

It uses the single-clip layers below it (data problems, models, hardware, extract) and nothing
above them: neither pipeline imports the other's loop.
"""
