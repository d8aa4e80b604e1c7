"""Where a page's candidate collections come from: the catalog index, the user's context,
the collection sources (curated, rules, ml) and the fast first pass that cuts them."""
