"""ML2 mechanism driver of the lab cloud: binds every port, no L2 agent needed.

The lab has no Open vSwitch or Linux bridge agents: the compute driver plugs each
instance port into the network's bridge in the lab's fabric namespace, and the
lab-network agent (monoscape_labnet) filters it by its security groups. Ports are
bound to whatever host Nova asks for, with VIF type `other` and port filtering
on, and go ACTIVE.
labctl installs this module into the lab venv with an entry point
(`neutron.ml2.mechanism_drivers: monoscape_lab`).
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
NETWORK_TYPES = (constants.TYPE_LOCAL, constants.TYPE_FLAT, constants.TYPE_VLAN, constants.TYPE_VXLAN)


class LabMechanismDriver(api.MechanismDriver):
    def initialize(self):
        LOG.info("monoscape_lab mechanism driver: binds ports on any host without agents")

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in NETWORK_TYPES:
                context.set_binding(
                    segment[api.ID],
                    portbindings.VIF_TYPE_OTHER,
                    {portbindings.CAP_PORT_FILTER: True, portbindings.VIF_DETAILS_CONNECTIVITY: self.connectivity},
                    status=constants.PORT_STATUS_ACTIVE,
                )
                return
