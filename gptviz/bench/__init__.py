"""Side-by-side benchmarks against the book's way (`gptviz bench`): generation, training, capture, GUI, start-up."""
