"""Qt-free, synchronous engine: weights, training, generation, snapshots, the session facade."""
