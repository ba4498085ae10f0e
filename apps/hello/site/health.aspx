<%@ Page Language="C#" Inherits="Monoscape.Samples.HealthPage" %>
