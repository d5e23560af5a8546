"""The multi-camera driving QA pipeline (DriveBench / RoboSense Track 1), notebook 06.

    data       items, cameras, object tags, the options written in a question
    router     question -> official subtask; the routing table (subtask -> model size, style)
    prompts    the multi-image prompt
    retrieval  knowledge-base notes (TF-IDF), hint / override, leakage guard
    scoring    offline scores (accuracy, ROUGE-L, BLEU-4, METEOR), routing statistics
    run        models by size, the answering loop with fallback, resumable results
    ensemble   several runs' results.json combined by position (vote, mean; open answers kept)
    demo       stand-in six-camera images and KB for the demo profile

It uses the single-clip layers below it (data problems, models, hardware, extract) and nothing
above them: neither pipeline imports the other's loop.
"""
