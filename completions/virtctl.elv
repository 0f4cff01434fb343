
set edit:completion:arg-completer[virtctl] = { |@words|
    var index = (count $words)
    set index = (- $index 1)

    put (env _CLAP_IFS="\n" _CLAP_COMPLETE_INDEX=(to-string $index) VIRTCTL_COMPLETE="elvish" virtctl -- $@words) | to-lines
}

