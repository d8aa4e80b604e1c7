"""The page pipeline: retrieve -> rank -> diversify -> order -> rules -> explain."""
