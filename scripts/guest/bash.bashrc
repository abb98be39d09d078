# The dts guest's /etc/bash.bashrc. Debian's bash reads it for interactive
# shells and for commands run over SSH. dropbear gives non-root users
# PATH=/usr/bin:/bin; add the sbin directories (ip, ifconfig, ... live there).
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ;;
esac
export PATH
[ -z "${PS1:-}" ] || PS1='\u@\h:\w\$ '
