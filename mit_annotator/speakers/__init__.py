"""Who speaks: active speakers (LR-ASD) and lips, each voice bound to the person who speaks it, speak/listen
timelines, and the speaker binding for the multi-speaker models."""
