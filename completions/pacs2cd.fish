# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pacs2cd_global_optspecs
    string join \n config= v/verbose q/quiet json no-progress h/help V/version
end

function __fish_pacs2cd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pacs2cd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pacs2cd_using_subcommand
    set -l cmd (__fish_pacs2cd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -s h -l help -d 'Print help'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -s V -l version -d 'Print version'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "relay" -d 'Send every DICOM instance under DIR to the CD publisher in one association, and verify each one'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "print" -d 'Send the studies of the accession numbers to the CD publisher: the whole legacy send_rimage_multiple job'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "fetch" -d 'Find the patient, retrieve the studies of the accession numbers from the PACS, and lay them out as a disc folder'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "cgi" -d 'Answer one CGI request (nginx + fcgiwrap); chosen by itself when GATEWAY_INTERFACE is set and no command is given'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "check" -d 'Check the configuration, the DCMTK tools, the PACS (a C-FIND), the CD publisher (a C-ECHO), the folders and the web setup: one line each'
complete -c pacs2cd -n "__fish_pacs2cd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -l to -d 'Send to this receiver instead of the configured CD publisher' -r -f
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand relay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l to -d 'Send to this receiver instead of the configured CD publisher' -r -f
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l dry-run -d 'Look up and show what would be sent; retrieve and send nothing'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l allow-mixed-patients -d 'Accept studies of different patients on one disc (each is named in the result)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l allow-unidentified -d 'Accept a study without a PatientID among other studies (nothing tells whose it is) [config: patient.allow_unidentified]'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l allow-partial -d 'Accept what arrived when the PACS delivers fewer images than it lists (the result says PARTIAL DISC)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l allow-unproven -d 'Accept a disc nothing proves complete: the PACS gives no image list and no image counts [config: pacs.allow_unproven]'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand print" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -s o -l output -d 'Output folder [default: ./{PATIENT_NAME}-{ACC1_ACC2}]' -r -f -a "(__fish_complete_directories)"
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l iso -d 'Also build an ISO 9660 image (Joliet, Rock Ridge) of the disc [default FILE: ./{PATIENT_NAME}-{ACC1_ACC2}.iso]; a file name is given as --iso=FILE, so `--iso ACC` reads ACC as an accession; without -o the folder itself is not kept' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l force -d 'Write into a non-empty output folder (its DICOM/ and DICOMDIR are removed first), overwrite an existing image, allow an image larger than a DVD'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l allow-mixed-patients -d 'Accept studies of different patients on one disc (each is named in the result)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l allow-unidentified -d 'Accept a study without a PatientID among other studies (nothing tells whose it is) [config: patient.allow_unidentified]'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l allow-partial -d 'Accept what arrived when the PACS delivers fewer images than it lists (the result says PARTIAL DISC)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l allow-unproven -d 'Accept a disc nothing proves complete: the PACS gives no image list and no image counts [config: pacs.allow_unproven]'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand fetch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand cgi" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -l config -d 'Configuration file [default: $PACS2CD_CONFIG, then $XDG_CONFIG_HOME/pacs2cd/config.toml, then /etc/pacs2cd/config.toml]' -r -F
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -s v -l verbose -d 'More log output on stderr (-v: each tool run, -vv: the tools\' own output)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -s q -l quiet -d 'Only errors on stderr, no progress'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -l json -d 'Print the result as one JSON object on stdout'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -l no-progress -d 'No progress bar, even on a terminal (log lines instead)'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "relay" -d 'Send every DICOM instance under DIR to the CD publisher in one association, and verify each one'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "print" -d 'Send the studies of the accession numbers to the CD publisher: the whole legacy send_rimage_multiple job'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "fetch" -d 'Find the patient, retrieve the studies of the accession numbers from the PACS, and lay them out as a disc folder'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "cgi" -d 'Answer one CGI request (nginx + fcgiwrap); chosen by itself when GATEWAY_INTERFACE is set and no command is given'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "check" -d 'Check the configuration, the DCMTK tools, the PACS (a C-FIND), the CD publisher (a C-ECHO), the folders and the web setup: one line each'
complete -c pacs2cd -n "__fish_pacs2cd_using_subcommand help; and not __fish_seen_subcommand_from relay print fetch cgi check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
