"""The vision stages: shots, people, whole-body poses, tracks, faces, camera motion, and drawing them."""
