"""Meta-learning across NER tasks: episodes, Reptile / first-order MAML (plain torch; Ray only in driver.py)."""
