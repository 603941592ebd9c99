"""`lab tour`: the article's argument as live experiments, in its order.

    steps.yaml             the steps: for each, the scenarios to run against which models
    narration-<lang>.yaml  the words: every step's question, what to watch, answer and lesson
    steps.py               loading them, choosing steps (--step, --from), checking the words complete
    lesson.py              what a step may say from its verdicts: the lesson only where they agree
    runner.py              each step against live containers, through lab/checks' run_model
                           (the judges of `lab check`); tour.json, checks.json
    show.py                the person's view: words, the live view (lab/watch), answers, pauses
    transcript.py          transcript.<lang>.md and .html, with each step's timeline (lab/report)

No verdict is made here: every one comes from lab/checks, as `lab check` makes it.
"""
