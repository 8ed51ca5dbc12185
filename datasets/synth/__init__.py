"""Procedural street scenes: perspective-correct images and videos with honest labels."""
