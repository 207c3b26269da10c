"""Continual learning: NER experiences in sequence (domains, or entity types), without forgetting."""
