"""Training textual-inversion embeddings and hypernetworks against the loaded model (A1111's Train tab).

Engine-level: it uses the Engine's model, queue and job state, and knows nothing of the doors.
``create`` makes new files, ``trainer`` runs a training job, ``preprocess`` prepares a folder of pictures.
"""
