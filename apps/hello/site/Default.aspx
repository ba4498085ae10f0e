<%@ Page Language="C#" Inherits="Monoscape.Samples.HelloPage" %>
