
use builtin;
use str;

set edit:completion:arg-completer[virtctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'virtctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'virtctl'= {
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand start 'Start a virtual machine'
            cand stop 'Stop a virtual machine'
            cand restart 'Restart a virtual machine'
            cand expose 'Expose a virtual machine instance, virtual machine or replica set as a new Service'
            cand status 'Show virtual machines: status, readiness, and their instance''s phase, node and IP'
            cand version 'Print the client and server version information'
            cand completion 'Print a shell completion script (bash, zsh, fish, powershell or elvish)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'virtctl;start'= {
            cand --paused 'Start the virtual machine with its guest paused'
            cand --dry-run 'Only print what would happen: the request is sent with dryRun=All and changes nothing'
            cand --wait 'Block until the command has taken effect (Running, Stopped, or running again)'
            cand --timeout 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;stop'= {
            cand --force 'Stop at once with the given --grace-period instead of the guest''s own (needs --grace-period)'
            cand --grace-period 'With --force: the grace period in seconds given to the guest (default -1: its own)'
            cand --dry-run 'Only print what would happen: the request is sent with dryRun=All and changes nothing'
            cand --wait 'Block until the command has taken effect (Running, Stopped, or running again)'
            cand --timeout 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;restart'= {
            cand --force 'Kill the running instance at once (only with --grace-period=0). This may corrupt the guest''s data'
            cand --grace-period 'With --force: the grace period in seconds; only 0 is supported (default -1)'
            cand --dry-run 'Only print what would happen: the request is sent with dryRun=All and changes nothing'
            cand --wait 'Block until the command has taken effect (Running, Stopped, or running again)'
            cand --timeout 'With --wait: give up after this long, e.g. 90s, 5m (default 5m). Implies --wait'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -y 'Do not ask for confirmation before a force restart'
            cand --yes 'Do not ask for confirmation before a force restart'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;expose'= {
            cand --name 'Name of the Service to create (required)'
            cand --port 'The port the Service serves; without it, the ports are found by introspection'
            cand --target-port 'With --port: the port number or name on the instance to forward to (default: --port)'
            cand --protocol 'With --port: the protocol, TCP or UDP'
            cand --port-name 'With --port: the name of the port'
            cand --type 'Service type: ClusterIP, NodePort or LoadBalancer'
            cand --cluster-ip 'Cluster IP of the Service; empty allocates one, "None" makes it headless'
            cand --external-ip 'An external IP the Service also accepts traffic on'
            cand --ip-family 'IP family or families: IPv4, IPv6, "IPv4,IPv6" or "IPv6,IPv4"'
            cand --ip-family-policy 'IP family policy: SingleStack, PreferDualStack or RequireDualStack'
            cand --dry-run 'Print the Service as YAML instead of creating it'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'virtctl;status'= {
            cand -o 'Print the VirtualMachine objects instead of the table: yaml or json'
            cand --output 'Print the VirtualMachine objects instead of the table: yaml or json'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -A 'List the virtual machines of every namespace'
            cand --all-namespaces 'List the virtual machines of every namespace'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;version'= {
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;completion'= {
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'
            cand --context 'The kubeconfig context to use'
            cand --cluster 'The kubeconfig cluster to use'
            cand --user 'The kubeconfig user to use'
            cand -n 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand --namespace 'The namespace of the request (a leading "ns/" or "namespace/" is ignored)'
            cand -s 'The address and port of the Kubernetes API server'
            cand --server 'The address and port of the Kubernetes API server'
            cand --token 'Bearer token for authentication to the API server'
            cand --certificate-authority 'Path to a cert file for the certificate authority'
            cand --client-certificate 'Path to a client certificate file for TLS'
            cand --client-key 'Path to a client key file for TLS'
            cand --insecure-skip-tls-verify 'Do not check the server''s certificate (makes HTTPS insecure)'
            cand --tls-server-name 'Server name to use for certificate validation (default: the server''s host name)'
            cand --request-timeout 'How long to wait for one request before giving up, e.g. 30s, 1m; 0 means no timeout'
            cand --as 'Username to impersonate for the operation'
            cand --as-group 'Group to impersonate for the operation; repeat it for several groups'
            cand -v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand --v 'Log verbosity (accepted for compatibility; virtctl prints no logs)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'virtctl;help'= {
            cand start 'Start a virtual machine'
            cand stop 'Stop a virtual machine'
            cand restart 'Restart a virtual machine'
            cand expose 'Expose a virtual machine instance, virtual machine or replica set as a new Service'
            cand status 'Show virtual machines: status, readiness, and their instance''s phase, node and IP'
            cand version 'Print the client and server version information'
            cand completion 'Print a shell completion script (bash, zsh, fish, powershell or elvish)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'virtctl;help;start'= {
        }
        &'virtctl;help;stop'= {
        }
        &'virtctl;help;restart'= {
        }
        &'virtctl;help;expose'= {
        }
        &'virtctl;help;status'= {
        }
        &'virtctl;help;version'= {
        }
        &'virtctl;help;completion'= {
        }
        &'virtctl;help;help'= {
        }
    ]
    $completions[$command]
}
