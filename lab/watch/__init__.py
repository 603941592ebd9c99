"""The live view: who is served and who waits, while it happens.

    state.py    the screen's model, built from events alone (pure: replayed in tests)
    render.py   the screen drawn with rich: lanes (grouped past a dozen), served at once,
                processes and threads, CPU, the last server events
    live.py     events in (the engine's log streams, as `lab logs`, or a probed server's
                EventStream), the process table and CPU read four times a second, rich.live out

`lab watch` and `lab up --watch` show a running topology; `lab tour` shows
each experiment in the same view.
"""
