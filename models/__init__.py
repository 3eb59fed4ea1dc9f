"""Tag vocabulary and the tag suggester."""
