# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_virtctl_global_optspecs
    string join \n kubeconfig= context= cluster= user= n/namespace= s/server= token= certificate-authority= client-certificate= client-key= insecure-skip-tls-verify= tls-server-name= request-timeout= as= as-group= v/v= h/help V/version
end

function __fish_virtctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_virtctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_virtctl_using_subcommand
    set -l cmd (__fish_virtctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c virtctl -n "__fish_virtctl_needs_command" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_needs_command" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_needs_command" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_needs_command" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_needs_command" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_needs_command" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_needs_command" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_needs_command" -s V -l version -d 'Print version'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "start" -d 'Start a virtual machine'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "stop" -d 'Stop a virtual machine'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "restart" -d 'Restart a virtual machine'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "expose" -d 'Expose a virtual machine instance, virtual machine or replica set as a new Service'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "status" -d 'Show virtual machines: status, readiness, and their instance\'s phase, node and IP'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "version" -d 'Print the client and server version information'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, powershell or elvish)'
complete -c virtctl -n "__fish_virtctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l paused -d 'Start the virtual machine with its guest paused' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l dry-run -d 'Only print what would happen: the request is sent with dryRun=All and changes nothing' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l wait -d 'Block until the command has taken effect (Running, Stopped, or running again)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l timeout -d 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l force -d 'Stop at once with the given --grace-period instead of the guest\'s own (needs --grace-period)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l grace-period -d 'With --force: the grace period in seconds given to the guest (default -1: its own)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l dry-run -d 'Only print what would happen: the request is sent with dryRun=All and changes nothing' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l wait -d 'Block until the command has taken effect (Running, Stopped, or running again)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l timeout -d 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l force -d 'Kill the running instance at once (only with --grace-period=0). This may corrupt the guest\'s data' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l grace-period -d 'With --force: the grace period in seconds; only 0 is supported (default -1)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l dry-run -d 'Only print what would happen: the request is sent with dryRun=All and changes nothing' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l wait -d 'Block until the command has taken effect (Running, Stopped, or running again)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l timeout -d 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -s y -l yes -d 'Do not ask for confirmation before a force restart'
complete -c virtctl -n "__fish_virtctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l name -d 'Name of the Service to create (required)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l port -d 'The port the Service serves; without it, the ports are found by introspection' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l target-port -d 'With --port: the port number or name on the instance to forward to (default: --port)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l protocol -d 'With --port: the protocol, TCP or UDP' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l port-name -d 'With --port: the name of the port' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l type -d 'Service type: ClusterIP, NodePort or LoadBalancer' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l cluster-ip -d 'Cluster IP of the Service; empty allocates one, "None" makes it headless' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l external-ip -d 'An external IP the Service also accepts traffic on' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l ip-family -d 'IP family or families: IPv4, IPv6, "IPv4,IPv6" or "IPv6,IPv4"' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l ip-family-policy -d 'IP family policy: SingleStack, PreferDualStack or RequireDualStack' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l dry-run -d 'Print the Service as YAML instead of creating it' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand expose" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s o -l output -d 'Print the VirtualMachine objects instead of the table: yaml or json' -r -f -a "yaml\t''
json\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s A -l all-namespaces -d 'List the virtual machines of every namespace'
complete -c virtctl -n "__fish_virtctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l context -d 'The kubeconfig context to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l cluster -d 'The kubeconfig cluster to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l user -d 'The kubeconfig user to use' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -s n -l namespace -d 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -s s -l server -d 'The address and port of the Kubernetes API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l token -d 'Bearer token for authentication to the API server' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l certificate-authority -d 'Path to a cert file for the certificate authority' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l client-certificate -d 'Path to a client certificate file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l client-key -d 'Path to a client key file for TLS' -r -F
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l insecure-skip-tls-verify -d 'Do not check the server\'s certificate (makes HTTPS insecure)' -r -f -a "true\t''
false\t''"
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l tls-server-name -d 'Server name to use for certificate validation (default: the server\'s host name)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l request-timeout -d 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l as -d 'Username to impersonate for the operation' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -l as-group -d 'Group to impersonate for the operation; repeat it for several groups' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -s v -l v -d 'Log verbosity (accepted for compatibility; virtctl prints no logs)' -r
complete -c virtctl -n "__fish_virtctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "start" -d 'Start a virtual machine'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "stop" -d 'Stop a virtual machine'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "restart" -d 'Restart a virtual machine'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "expose" -d 'Expose a virtual machine instance, virtual machine or replica set as a new Service'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "status" -d 'Show virtual machines: status, readiness, and their instance\'s phase, node and IP'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "version" -d 'Print the client and server version information'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, powershell or elvish)'
complete -c virtctl -n "__fish_virtctl_using_subcommand help; and not __fish_seen_subcommand_from start stop restart expose status version completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
