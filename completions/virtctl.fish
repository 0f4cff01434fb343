complete --keep-order --exclusive --command virtctl --arguments "(VIRTCTL_COMPLETE=fish virtctl -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
